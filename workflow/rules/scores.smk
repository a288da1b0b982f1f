# The genetic modalities the model reads: raw SNPs, polygenic scores, gene burden.


rule snps:
    input:
        multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
    output:
        matrix="results/scores/snps.npz",
        variants="results/scores/snps.variants.tsv",
    log:
        "logs/scores/snps.log",
    benchmark:
        "benchmarks/scores/snps.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        bfile=lambda wildcards, input: input[0].removesuffix(".bed"),
        out=lambda wildcards, output: output.matrix.removesuffix(".npz"),
        maf=config["snps"]["maf"],
        selection=(
            f"--every-kth {config['snps']['every_kth']}"
            if config["snps"]["selection"] == "every_kth"
            else f"--indep-pairwise {indep_pairwise_arg(config['snps']['indep_pairwise'])}"
        ),
    shell:
        "python -m contig snps --bfile {params.bfile} --out {params.out}"
        " --maf {params.maf} {params.selection} > {log} 2>&1"


rule prs:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        scores=pgs_files(),
    output:
        matrix="results/scores/prs.npz",
        scores="results/scores/prs.scores.tsv",
        log_table="results/scores/prs.match.tsv.gz",
        summary=report(
            "results/scores/prs.summary.tsv",
            caption="../report/prs.rst",
            category="2. Genetic scores",
            labels={"table": "PGS matching"},
        ),
    log:
        "logs/scores/prs.log",
    benchmark:
        "benchmarks/scores/prs.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        scores=lambda wildcards, input: " ".join(input.scores),
        bfile=lambda wildcards, input: input.genotypes[0].removesuffix(".bed"),
        out=lambda wildcards, output: output.matrix.removesuffix(".npz"),
        settings=config["prs"],
        flags=" ".join(
            flag
            for flag, on in (
                ("--keep-ambiguous", config["prs"]["keep_ambiguous"]),
                ("--no-mean-imputation", not config["prs"]["mean_imputation"]),
                (
                    f"--genome-build {config['prs']['genome_build']}",
                    config["prs"]["genome_build"],
                ),
            )
            if on
        ),
    shell:
        "python -m contig prs --bfile {params.bfile} --scores {params.scores}"
        " --out {params.out} --min-overlap {params.settings[min_overlap]}"
        " {params.flags} > {log} 2>&1"


rule burden:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        genes=INPUTS["genes"],
    output:
        matrix="results/scores/burden.npz",
        genes=report(
            "results/scores/burden.genes.tsv",
            caption="../report/burden.rst",
            category="2. Genetic scores",
            labels={"table": "Gene burden"},
        ),
    log:
        "logs/scores/burden.log",
    benchmark:
        "benchmarks/scores/burden.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        bfile=lambda wildcards, input: input.genotypes[0].removesuffix(".bed"),
        out=lambda wildcards, output: output.matrix.removesuffix(".npz"),
        settings=config["burden"],
    shell:
        "python -m contig burden --bfile {params.bfile} --genes {input.genes}"
        " --out {params.out} --max-maf {params.settings[max_maf]}"
        " --mode {params.settings[mode]} --min-carriers {params.settings[min_carriers]}"
        " > {log} 2>&1"
