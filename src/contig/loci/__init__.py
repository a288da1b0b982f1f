"""From loci to biology (workflow/rules/loci.smk): lead loci annotated with genes, phenotypes and
replication in the other eye (annotate), regional plots coloured by LD with the lead variant
(regional), and the Miami plot of the left-eye against the right-eye GWAS (miami)."""
