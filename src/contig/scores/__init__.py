"""Genetic modalities: the modality file contract, raw SNPs, PGS Catalog scores, gene burden (rules/scores.smk)."""
