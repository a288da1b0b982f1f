"""Genotype stage: PLINK I/O, LD pruning, QC and principal components (rules/genotypes.smk)."""
