"""The cohort simulator: genotypes with LD and structure, fundus images, covariates, PGS files, truth.

Public API: :class:`SimulationConfig`, :func:`simulate_cohort`, :data:`TRAITS`,
:func:`read_simulation_json`. Files written (contracts for later stages) are listed in
:func:`contig.simulate.cohort.simulate_into` and in the module docs of each part:
``genotypes.bed/.bim/.fam``, ``images/`` + ``images.tsv`` (IID path eye), ``covariates.tsv``
(IID age sex batch; sex in PLINK coding 1 = male, 2 = female, as in the .fam), ``pgs/*.txt.gz``,
``genes.tsv`` (chrom start end gene, 1-based inclusive, GRCh37 like the .bim), ``labels.tsv``
(IID disease severity), ``truth.tsv`` (kind id chrom start end trait effect variance_explained
role maf; effect per ALT allele of the .bim, in SD units of the latent trait), ``traits.tsv``
(IID population + one column per trait), ``simulation.json`` (config + summary).
"""

from contig.simulate.cohort import simulate_cohort
from contig.simulate.config import TRAITS, SimulationConfig, read_simulation_json

__all__ = ["TRAITS", "SimulationConfig", "read_simulation_json", "simulate_cohort"]
