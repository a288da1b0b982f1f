# From loci to biology: each method's lead loci (min p x k) annotated with their genes, the
# phenotypes they are significant for and replication in the other eye; regional plots of the
# strongest loci coloured by LD with the lead; the Miami plot of the left-eye against the
# right-eye GWAS. Aggregates only: summary statistics, LD, gene positions.


rule annotate_loci:
    input:
        unpack(loci_annotation_inputs),
    output:
        report(
            "results/loci/{method}/loci.annotated.tsv",
            caption="../report/loci_annotated.rst",
            category="9. Loci",
            subcategory="{method}",
            labels={"method": "{method}", "table": "annotated loci"},
        ),
    log:
        "logs/loci/{method}/annotate.log",
    benchmark:
        "benchmarks/loci/{method}/annotate.tsv"
    conda:
        "../../envs/genetics.yaml"
    params:
        other_eyes=other_eye_args,
        options=command_options(
            {
                "--threshold": config["gwas"]["threshold"],
                "--alpha": (
                    config["evaluate"]["replication_alpha"] if REPLICATE_EYES else None
                ),
            }
        ),
    shell:
        "python -m contig annotate-loci --loci {input.loci} --clumps {input.clumps}"
        " --genes {input.genes} --pheno-sumstats {input.sumstats} {params.other_eyes}"
        " {params.options} --out {output} > {log} 2>&1"


rule regional_plots:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        sumstats="results/gwas/{method}/assoc.combined.parquet",
        loci="results/gwas/{method}/loci.tsv",
        pheno="results/gwas/{method}/phenotypes.pheno.tsv",
        genes=INPUTS["genes"],
    output:
        report(
            directory("results/loci/{method}/regional"),
            patterns=["{locus}.png"],
            caption="../report/regional.rst",
            category="9. Loci",
            subcategory="{method}",
            labels={"method": "{method}", "figure": "regional plot {locus}"},
        ),
    log:
        "logs/loci/{method}/regional.log",
    benchmark:
        "benchmarks/loci/{method}/regional.tsv"
    conda:
        "../../envs/genetics.yaml"
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        options=command_options(
            {
                "--window-kb": config["loci"]["window_kb"],
                "--max-plots": config["loci"]["max_regional_plots"],
                "--threshold": config["gwas"]["threshold"],
            }
        ),
    shell:
        "python -m contig regional-plots --loci {input.loci} --sumstats {input.sumstats}"
        " --bfile {params.bfile} --keep {input.pheno} --genes {input.genes}"
        " {params.options} --title '{wildcards.method}, min p x k' --out {output}"
        " > {log} 2>&1"


rule miami_plot:
    input:
        left="results/gwas/{method}_left/assoc.combined.parquet",
        right="results/gwas/{method}_right/assoc.combined.parquet",
        left_loci="results/gwas/{method}_left/loci.tsv",
        right_loci="results/gwas/{method}_right/loci.tsv",
    output:
        report(
            "results/loci/{method}/miami.png",
            caption="../report/miami.rst",
            category="9. Loci",
            subcategory="{method}",
            labels={
                "method": "{method}",
                "figure": "Miami plot, left eye over right eye",
            },
        ),
    log:
        "logs/loci/{method}/miami.log",
    benchmark:
        "benchmarks/loci/{method}/miami.tsv"
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options({"--threshold": config["gwas"]["threshold"]}),
    shell:
        "python -m contig miami-plot --sumstats {input.left} --sumstats-other {input.right}"
        " --loci {input.left_loci} --loci-other {input.right_loci}"
        " --name 'left eye' --name-other 'right eye' {params.options}"
        " --title '{wildcards.method}: min p x k, people with both eyes' --out {output}"
        " > {log} 2>&1"
