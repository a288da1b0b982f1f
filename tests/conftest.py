"""Shared pytest setup: tests/ importable for the helper modules, the plink oracle marker, fixtures.

``@pytest.mark.plink2`` marks a test that runs plink2 as its oracle; ``@pytest.mark.plink2("plink1.9")``
one that runs the named binaries instead. Such a test is skipped, with the missing binaries named,
when they are not on PATH (Debian packages plink2 and plink1.9).
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402

DEFAULT_ORACLE = ("plink2",)


def missing_oracles(item: pytest.Item) -> list[str]:
    """The binaries a ``plink2``-marked test needs that are not on PATH (empty if unmarked)."""
    needed: list[str] = []
    for marker in item.iter_markers("plink2"):
        needed += list(marker.args) or list(DEFAULT_ORACLE)
    return [name for name in dict.fromkeys(needed) if shutil.which(name) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        missing = missing_oracles(item)
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"oracle {' and '.join(missing)} not on PATH (apt-get install plink2 plink1.9)"))


@pytest.fixture(scope="session")
def sim_cohort(tmp_path_factory) -> Path:
    """A small simulated cohort (400 people, 4,000 SNPs on 22 chromosomes, 64 px images), made once.

    Read-only for tests: copy files before changing them.
    """
    from contig.simulate import SimulationConfig, simulate_cohort

    out = tmp_path_factory.mktemp("sim") / "cohort"
    simulate_cohort(out, SimulationConfig(n_samples=400, n_snps=4000, image_size=64, seed=7))
    return out
