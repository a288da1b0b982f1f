"""Shared pytest setup: make tests/ importable for helper modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sim_cohort(tmp_path_factory) -> Path:
    """A small simulated cohort (400 people, 4,000 SNPs on 22 chromosomes, 64 px images), made once.

    Read-only for tests: copy files before changing them.
    """
    from contig.simulate import SimulationConfig, simulate_cohort

    out = tmp_path_factory.mktemp("sim") / "cohort"
    simulate_cohort(out, SimulationConfig(n_samples=400, n_snps=4000, image_size=64, seed=7))
    return out
