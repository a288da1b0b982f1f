# Evaluation of the methods: probes on frozen embeddings, the truth check (simulated cohorts),
# replication of loci across eyes, and the comparison table of all methods.


rule probes:
    input:
        embeddings=expand("results/embed/{method}.parquet", method=METHODS),
        labels=INPUTS["labels"] or [],
        traits=f"{config['simulate']['out']}/traits.tsv" if SIMULATED else [],
    output:
        **(
            {
                "traits": report(
                    "results/evaluate/probes.traits.tsv",
                    caption="../report/traits.rst",
                    category="8. Evaluation",
                    subcategory="trait decodability",
                    labels={"table": "true traits decoded from the embeddings (R²)"},
                ),
                "traits_figure": report(
                    "results/evaluate/probes.traits.png",
                    caption="../report/traits.rst",
                    category="8. Evaluation",
                    subcategory="trait decodability",
                    labels={"figure": "R² of the true traits"},
                ),
            }
            if SIMULATED
            else {}
        ),
        probes="results/evaluate/probes.probes.tsv",
        summary=report(
            "results/evaluate/probes.summary.tsv",
            caption="../report/probes_summary.rst",
            category="8. Evaluation",
            subcategory="probes",
            labels={"table": "probe metrics (mean ± sd over seeds)"},
        ),
        figure=report(
            "results/evaluate/probes.probes.png",
            caption="../report/probes.rst",
            category="8. Evaluation",
            subcategory="probes",
            labels={"figure": "probe metric vs label fraction"},
        ),
    log:
        "logs/evaluate/probes.log",
    benchmark:
        "benchmarks/evaluate/probes.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        embeddings=lambda wildcards, input: " ".join(
            f"--embeddings {Path(p).stem}={p}" for p in input.embeddings
        ),
        out=lambda wildcards, output: output.probes.removesuffix(".probes.tsv"),
        traits=lambda wildcards, input: (
            f"--traits {input.traits}" if input.traits else ""
        ),
        fractions=" ".join(str(f) for f in config["evaluate"]["fractions"]),
        settings=config["evaluate"],
    shell:
        # Many small L-BFGS fits: multithreaded BLAS only adds overhead (10x slower measured).
        "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1"
        " python -m contig evaluate {params.embeddings} --labels {input.labels}"
        " {params.traits} --out {params.out} --fractions {params.fractions}"
        " --seeds {params.settings[seeds]} --test-fraction {params.settings[test_fraction]}"
        " > {log} 2>&1"


rule truth:
    input:
        loci=expand("results/gwas/{method}/loci.loci.tsv", method=METHODS),
        sumstats=expand("results/gwas/{method}/sumstats", method=METHODS),
        truth=f"{config['simulate']['out']}/truth.tsv",
        simulation=f"{config['simulate']['out']}/simulation.json",
    output:
        summary=report(
            "results/evaluate/truth.tsv",
            caption="../report/truth.rst",
            category="8. Evaluation",
            subcategory="truth check",
            labels={
                "table": "planted loci recovered, false loci, null-chromosome λGC"
            },
        ),
        loci=report(
            "results/evaluate/truth.loci.tsv",
            caption="../report/truth_loci.rst",
            category="8. Evaluation",
            subcategory="truth check",
            labels={"table": "every locus with its planted match"},
        ),
        lambdas="results/evaluate/truth.lambda.tsv",
    log:
        "logs/evaluate/truth.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        loci=lambda wildcards, input: " ".join(
            f"{m}={p}" for m, p in zip(METHODS, input.loci)
        ),
        sumstats=lambda wildcards, input: " ".join(
            f"{m}={p}" for m, p in zip(METHODS, input.sumstats)
        ),
        window=config["evaluate"]["window_kb"],
    shell:
        "python -m contig truth --loci {params.loci} --pheno-sumstats {params.sumstats}"
        " --truth {input.truth} --simulation {input.simulation}"
        " --window-kb {params.window} --out {output.summary} > {log} 2>&1"


rule replicate:
    input:
        left_loci="results/gwas/{method}_left/loci.loci.tsv",
        right_loci="results/gwas/{method}_right/loci.loci.tsv",
        left_sumstats="results/gwas/{method}_left/assoc.combined.parquet",
        right_sumstats="results/gwas/{method}_right/assoc.combined.parquet",
    output:
        loci=report(
            "results/evaluate/replication/{method}.tsv",
            caption="../report/replication.rst",
            category="8. Evaluation",
            subcategory="replication across eyes",
            labels={"method": "{method}", "table": "loci replicated in the other eye"},
        ),
        summary="results/evaluate/replication/{method}.summary.tsv",
    log:
        "logs/evaluate/replication/{method}.log",
    wildcard_constraints:
        method="contig|simclr|random",
    conda:
        "../../envs/genetics.yaml"
    params:
        settings=config["evaluate"],
    shell:
        "python -m contig replicate --loci {input.left_loci}"
        " --sumstats-other {input.right_sumstats} --loci-other {input.right_loci}"
        " --sumstats {input.left_sumstats} --name left --name-other right"
        " --alpha {params.settings[replication_alpha]}"
        " --window-kb {params.settings[window_kb]} --out {output.loci} > {log} 2>&1"


rule compare:
    input:
        unpack(comparison_inputs),
    output:
        table=report(
            "results/evaluate/comparison.tsv",
            caption="../report/comparison.rst",
            category="8. Evaluation",
            subcategory="comparison of methods",
            labels={"table": "methods compared"},
        ),
        markdown="results/evaluate/comparison.md",
    log:
        "logs/evaluate/compare.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        args=comparison_args,
        methods=" ".join(METHODS),
        out=lambda wildcards, output: output.table.removesuffix(".tsv"),
    shell:
        "python -m contig compare --methods {params.methods} {params.args}"
        " --out {params.out} > {log} 2>&1"
