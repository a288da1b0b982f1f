"""SNP heritability of the GWAS phenotypes: randomized Haseman-Elston regression on the genotypes
(:mod:`contig.heritability.rhe`) and LD score regression on the summary statistics
(:mod:`contig.heritability.ldscore`, :mod:`contig.heritability.ldsc`), tables and the figure
(:mod:`contig.heritability.report`)."""
