"""GWAS stage: phenotypes, step 1 ridge, association, clumping and plots (rules/gwas.smk)."""
