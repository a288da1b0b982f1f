# Evaluation of the methods: probes on frozen embeddings, the truth check (simulated cohorts),
# replication of loci across eyes, and the comparison table of all methods.


rule probes:
    input:
        embeddings=expand("results/embed/{method}.parquet", method=METHODS),
        labels=INPUTS["labels"] or [],
        traits=f"{SIMULATION}/traits.tsv" if SIMULATED else [],
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
        probes="results/evaluate/probes.tsv",
        summary=report(
            "results/evaluate/probes.summary.tsv",
            caption="../report/probes_summary.rst",
            category="8. Evaluation",
            subcategory="probes",
            labels={"table": "probe metrics (mean over seeds, bootstrap interval)"},
        ),
        figure=report(
            "results/evaluate/probes.png",
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
        embeddings=embedding_args,
        labels=optional_input_arg("--labels", "labels"),
        traits=optional_input_arg("--traits", "traits"),
        prefix=subpath(output.probes, strip_suffix=".tsv"),
        options=command_options(
            {
                "--fractions": config["evaluate"]["fractions"],
                "--seeds": config["evaluate"]["seeds"],
                "--test-fraction": config["evaluate"]["test_fraction"],
                "--l2": config["evaluate"]["l2"],
                "--inner-folds": config["evaluate"]["inner_folds"],
                "--bootstrap": config["evaluate"]["bootstrap"],
                "--interval-level": config["evaluate"]["interval_level"],
            }
        ),
    shell:
        # Many small L-BFGS fits: multithreaded BLAS only adds overhead (10x slower measured).
        "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1"
        " python -m contig probes {params.embeddings} {params.labels} {params.traits}"
        " --out {params.prefix} {params.options} > {log} 2>&1"


rule truth:
    input:
        loci=expand("results/gwas/{method}/loci.tsv", method=METHODS),
        loci_joint=expand("results/gwas/{method}/loci.joint.tsv", method=METHODS),
        combined=expand("results/gwas/{method}/assoc.combined.parquet", method=METHODS),
        sumstats=expand("results/gwas/{method}/sumstats", method=METHODS),
        truth=f"{SIMULATION}/truth.tsv",
        simulation=f"{SIMULATION}/simulation.json",
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
        lambdas="results/evaluate/truth.lambda_gc.tsv",
    log:
        "logs/evaluate/truth.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        loci=method_paths_arg("loci"),
        loci_joint=method_paths_arg("loci_joint"),
        combined=method_paths_arg("combined"),
        sumstats=method_paths_arg("sumstats"),
        options=command_options({"--window-kb": config["evaluate"]["window_kb"]}),
    shell:
        "python -m contig truth --loci {params.loci} --loci-joint {params.loci_joint}"
        " --combined {params.combined} --pheno-sumstats {params.sumstats}"
        " --truth {input.truth} --simulation {input.simulation} {params.options}"
        " --out {output.summary} > {log} 2>&1"


rule replicate:
    input:
        left_loci="results/gwas/{method}_left/loci.tsv",
        right_loci="results/gwas/{method}_right/loci.tsv",
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
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options(
            {
                "--alpha": config["evaluate"]["replication_alpha"],
                "--window-kb": config["evaluate"]["window_kb"],
            }
        ),
    shell:
        "python -m contig replicate --loci {input.left_loci}"
        " --sumstats-other {input.right_sumstats} --loci-other {input.right_loci}"
        " --sumstats {input.left_sumstats} --name left --name-other right"
        " {params.options} --out {output.loci} > {log} 2>&1"


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
        inputs=comparison_args,
        out=subpath(output.table, strip_suffix=".tsv"),
        options=command_options(
            {
                "--methods": METHODS,
                "--probe": config["evaluate"]["compare_probes"] if LABELS else None,
            }
        ),
    shell:
        "python -m contig compare {params.options} {params.inputs} --out {params.out}"
        " > {log} 2>&1"
