# Genotype QC (plink2 semantics), genetic principal components.


rule qc:
    input:
        genotypes=genotype_inputs(),
        manifest=INPUTS["images"],
    output:
        multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        table=report(
            "results/genotypes/cohort.qc.tsv",
            caption="../report/qc.rst",
            category="1. Genotype QC",
            labels={"table": "QC filters"},
        ),
    log:
        "logs/genotypes/qc.log",
    benchmark:
        "benchmarks/genotypes/qc.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        bfile=genotype_arg(),
        out=lambda wildcards, output: output.table.removesuffix(".qc.tsv"),
        qc=config["qc"],
        keep=(
            lambda wildcards, input: (
                f"--keep {input.manifest}" if config["qc"]["keep_imaged_only"] else ""
            )
        ),
    shell:
        "python -m contig qc --bfile {params.bfile} --out {params.out} --mind {params.qc[mind]}"
        " --geno {params.qc[geno]} --maf {params.qc[maf]} --hwe {params.qc[hwe]}"
        " {params.keep} > {log} 2>&1"


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
        mem_mb=8000,
        runtime=120,
    params:
        out=lambda wildcards, output: output.eigenvec.removesuffix(".eigenvec"),
        bfile=lambda wildcards, input: input[0].removesuffix(".bed"),
        pca=config["pca"],
        window=indep_pairwise_arg(config["pca"]["indep_pairwise"]),
    shell:
        "python -m contig pca --bfile {params.bfile} --out {params.out}"
        " --n-pcs {params.pca[n_pcs]} --maf {params.pca[maf]}"
        " --indep-pairwise {params.window} --seed {params.pca[seed]} --no-plot > {log} 2>&1"


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
        color=(
            f"--color-by {config['pca']['color_by']}"
            if config["pca"]["color_by"]
            else ""
        ),
        density="" if config["report"]["individual_level"] else "--density",
    shell:
        "python -m contig pca-plot --eigenvec {input.eigenvec} --eigenval {input.eigenval}"
        " --out {output} {params.color} {params.density} > {log} 2>&1"
