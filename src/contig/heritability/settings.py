"""The settings of the heritability stage (and the defaults of its commands)."""

from __future__ import annotations

from dataclasses import dataclass

from contig.core.errors import InputError


@dataclass(frozen=True)
class HeritabilitySettings:
    """Settings shared by ``contig h2-rhe``, ``contig ld-scores`` and ``contig h2-ldsc``."""

    maf: float = 0.05  # variants below this MAF enter neither the GRM nor the LD scores
    probes: int = 20  # random probe vectors of the trace estimate; 0 = exact traces (small n)
    jackknife_blocks: int = 100  # contiguous variant blocks of the delete-one jackknife
    ld_window_kb: float = 1000.0  # LD score window (kb; no genetic map is assumed)
    seed: int = 0  # seed of the probe vectors

    def validate(self) -> None:
        """Refuse out-of-range values (InputError naming the option)."""
        if not 0.0 <= self.maf < 0.5:
            raise InputError(f"must be in [0, 0.5), got {self.maf:g}", "--maf")
        if self.probes < 0:
            raise InputError(f"must be 0 (exact) or positive, got {self.probes}", "--probes")
        if self.jackknife_blocks < 2:
            raise InputError(f"must be at least 2, got {self.jackknife_blocks}", "--jackknife-blocks")
        if not self.ld_window_kb > 0:
            raise InputError(f"must be positive, got {self.ld_window_kb:g}", "--ld-window-kb")
        if self.seed < 0:
            raise InputError(f"must be non-negative, got {self.seed}", "--seed")


HERITABILITY_DEFAULTS = HeritabilitySettings()
