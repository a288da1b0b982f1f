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
        **job_resources("snps"),
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        out=subpath(output.matrix, strip_suffix=".npz"),
        options=command_options(
            {
                "--maf": config["snps"]["maf"],
                "--every-kth": (
                    config["snps"]["every_kth"]
                    if config["snps"]["selection"] == "every_kth"
                    else None
                ),
                "--indep-pairwise": (
                    config["snps"]["indep_pairwise"]
                    if config["snps"]["selection"] == "ld_prune"
                    else None
                ),
            }
        ),
    shell:
        "python -m contig snps --bfile {params.bfile} --out {params.out} {params.options}"
        " > {log} 2>&1"


rule prs:
    input:
        genotypes=step2_genotype_inputs,
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
    threads: 2
    resources:
        **job_resources("prs"),
    params:
        source=step2_source_arg,
        out=subpath(output.matrix, strip_suffix=".npz"),
        options=command_options(
            {
                "--min-overlap": config["prs"]["min_overlap"],
                "--on-low-overlap": config["prs"]["on_low_overlap"],
                "--keep-ambiguous": config["prs"]["keep_ambiguous"],
                "--no-mean-imputation": not config["prs"]["mean_imputation"],
                "--genome-build": config["prs"]["genome_build"],
            }
        ),
    shell:
        "python -m contig prs {params.source} --scores {input.scores}"
        " --out {params.out} {params.options} --threads {threads} > {log} 2>&1"


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
        **job_resources("burden"),
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        out=subpath(output.matrix, strip_suffix=".npz"),
        options=command_options(
            {
                "--max-maf": config["burden"]["max_maf"],
                "--mode": config["burden"]["mode"],
                "--min-carriers": config["burden"]["min_carriers"],
            }
        ),
    shell:
        "python -m contig burden --bfile {params.bfile} --genes {input.genes}"
        " --out {params.out} {params.options} > {log} 2>&1"
