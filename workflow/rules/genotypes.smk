# Genotype QC (plink2 semantics), genetic principal components.


rule qc:
    input:
        genotypes=genotype_inputs(),
        manifest=INPUTS["images"] if config["qc"]["keep_imaged_only"] else [],
    output:
        multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        table=report(
            "results/genotypes/cohort.qc.tsv",
            caption="../report/qc.rst",
            category="1. Genotype QC",
            labels={"table": "QC filters"},
        ),
        removed="results/genotypes/cohort.removed.tsv",
        kin0="results/genotypes/cohort.kin0",
        king="results/genotypes/cohort.king.tsv",
        ancestry="results/genotypes/cohort.ancestry.tsv",
    log:
        "logs/genotypes/qc.log",
    benchmark:
        "benchmarks/genotypes/qc.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        **job_resources("qc"),
    params:
        # the prefix or the per-chromosome {chrom} pattern of config inputs.genotypes
        bfile=command_options({"--bfile": INPUTS["genotypes"]}),
        out=subpath(output.table, strip_suffix=".qc.tsv"),
        options=command_options(
            {
                "--mind": config["qc"]["mind"],
                "--geno": config["qc"]["geno"],
                "--maf": config["qc"]["maf"],
                "--hwe": config["qc"]["hwe"],
            }
        ),
        keep=optional_input_arg("--keep", "manifest"),
        # relatives and ancestry outliers, on the PCA's variant selection (sample_filter_options)
        sample_filters=command_options(
            plan.sample_filter_options(config["qc"], config["pca"])
        ),
    shell:
        "python -m contig qc {params.bfile} --out {params.out} {params.options} {params.keep}"
        " {params.sample_filters} > {log} 2>&1"


rule pca:
    input:
        multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
    output:
        eigenvec="results/genotypes/pca.eigenvec",
        eigenval="results/genotypes/pca.eigenval",
        prune="results/genotypes/pca.prune.in",
    log:
        "logs/genotypes/pca.log",
    benchmark:
        "benchmarks/genotypes/pca.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 2
    resources:
        **job_resources("pca"),
    params:
        out=subpath(output.eigenvec, strip_suffix=".eigenvec"),
        bfile=subpath(input[0], strip_suffix=".bed"),
        options=command_options(
            {
                "--n-pcs": config["pca"]["n_pcs"],
                "--maf": config["pca"]["maf"],
                "--indep-pairwise": config["pca"]["indep_pairwise"],
                "--seed": config["pca"]["seed"],
            }
        ),
    shell:
        "python -m contig pca --bfile {params.bfile} --out {params.out} {params.options}"
        " --no-plot > {log} 2>&1"


rule pca_plot:
    input:
        eigenvec="results/genotypes/pca.eigenvec",
        eigenval="results/genotypes/pca.eigenval",
    output:
        report(
            "results/genotypes/pca_plot.png",
            caption="../report/pca.rst",
            category="1. Genotype QC",
            labels={"figure": "Genetic PCs"},
        ),
    log:
        "logs/genotypes/pca_plot.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options(
            {
                "--color-by": config["pca"]["color_by"],
                "--density": not config["report"]["individual_level"],
            }
        ),
    shell:
        "python -m contig pca-plot --eigenvec {input.eigenvec} --eigenval {input.eigenval}"
        " --out {output} {params.options} > {log} 2>&1"


rule sample_filters_plot:
    input:
        qc="results/genotypes/cohort.qc.tsv",
        king="results/genotypes/cohort.king.tsv",
        ancestry="results/genotypes/cohort.ancestry.tsv",
    output:
        report(
            "results/genotypes/sample_filters.png",
            caption="../report/sample_filters.rst",
            category="1. Genotype QC",
            labels={"figure": "Relatives and ancestry outliers"},
        ),
    log:
        "logs/genotypes/sample_filters_plot.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options({"--density": not config["report"]["individual_level"]}),
    shell:
        "python -m contig sample-filters-plot --qc {input.qc} --king {input.king}"
        " --ancestry {input.ancestry} --out {output} {params.options} > {log} 2>&1"
