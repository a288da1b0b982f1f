# GWAS of embedding-derived phenotypes: covariates, phenotypes, association (scattered over
# chromosome groups, then gathered), the per-phenotype summary, clumping, plots. {analysis} is a
# method (contig, simclr, random) or, for the replication across eyes, <method>_left /
# <method>_right. One genome-wide threshold, gwas.threshold, serves the summary, the index
# variants of clumping and the Manhattan line; changing it reruns only those three.


rule covariates:
    input:
        covariates=INPUTS["covariates"],
        eigenvec="results/genotypes/pca.eigenvec",
    output:
        "results/gwas/covariates.tsv",
    log:
        "logs/gwas/covariates.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options(
            {
                "--quantitative": config["covariates"]["quantitative"],
                "--categorical": config["covariates"]["categorical"],
                "--n-pcs": min(config["gwas"]["genetic_pcs"], config["pca"]["n_pcs"]),
            }
        ),
    shell:
        "python -m contig covariates --covariates {input.covariates}"
        " --eigenvec {input.eigenvec} {params.options} --out {output} > {log} 2>&1"


rule phenotypes:
    input:
        embeddings="results/embed/{analysis}.parquet",
        covar="results/gwas/covariates.tsv",
    output:
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
        # the covariates plus the embedded eye where eyes are mixed (contig phenotypes)
        covar="results/gwas/{analysis}/phenotypes.covar.tsv",
        spectrum=report(
            "results/gwas/{analysis}/phenotypes.spectrum.png",
            caption="../report/spectrum.rst",
            category="5. Embeddings",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "figure": "variance spectrum"},
        ),
    log:
        "logs/gwas/{analysis}/phenotypes.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        out=subpath(output.pheno, strip_suffix=".pheno.tsv"),
        options=command_options(
            {
                "--n-pcs": (
                    config["gwas"]["n_pcs"]
                    if config["gwas"]["phenotypes"] == "pcs"
                    else None
                ),
                "--all-dims": config["gwas"]["phenotypes"] == "dims",
                "--no-rint": not config["gwas"]["rint"],
            }
        ),
    shell:
        "python -m contig phenotypes --embeddings {input.embeddings} --covar {input.covar}"
        " --out {params.out} {params.options} > {log} 2>&1"


rule gwas_step1:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
        covar="results/gwas/{analysis}/phenotypes.covar.tsv",
    output:
        "results/gwas/{analysis}/step1.loco.tsv.gz",
    log:
        "logs/gwas/{analysis}/step1.log",
    benchmark:
        "benchmarks/gwas/{analysis}/step1.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 2
    resources:
        **job_resources("gwas_step1"),
        # where the level-0 predictions are kept (memory or disk): same results, not a trigger
        step1_mem_mb=config["gwas"]["step1_mem_mb"],
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        out=subpath(output[0], strip_suffix=".loco.tsv.gz"),
        options=command_options({"--min-maf": config["gwas"]["step1_min_maf"]}),
    shell:
        "python -m contig gwas-step1 --bfile {params.bfile} --pheno {input.pheno}"
        " --covar {input.covar} --out {params.out} {params.options}"
        " --mem-mb {resources.step1_mem_mb} > {log} 2>&1"


rule imputed_samples:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        imputed=IMPUTED_FILES,
    output:
        "results/genotypes/imputed_samples.tsv",
    log:
        "logs/genotypes/imputed_samples.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        source=step2_source_arg,
    shell:
        "python -m contig match-samples --bfile results/genotypes/cohort {params.source}"
        " --out {output} > {log} 2>&1"


rule gwas:
    input:
        genotypes=step2_genotype_inputs,
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
        covar="results/gwas/{analysis}/phenotypes.covar.tsv",
        loco=loco_input,
    output:
        "results/gwas/{analysis}/parts/{part}.parquet",
    log:
        "logs/gwas/{analysis}/parts/{part}.log",
    benchmark:
        "benchmarks/gwas/{analysis}/parts/{part}.tsv"
    wildcard_constraints:
        part="|".join(GWAS_PARTS),
    conda:
        "../../envs/genetics.yaml"
    threads: 2
    resources:
        **GWAS_GPU_RESOURCES,
        **job_resources("gwas"),
    params:
        source=step2_source_arg,
        chroms=gwas_part_chromosomes,
        loco=optional_input_arg("--loco", "loco"),
        options=command_options(
            {
                "--maf": config["gwas"]["maf"],
                "--min-info": config["gwas"]["min_info"] if IMPUTED else None,
                "--min-mac": config["gwas"]["min_mac"] if IMPUTED else None,
                "--dtype": config["gwas"]["dtype"],
                "--chunk-size": config["gwas"]["chunk_size"],
                "--device": config["gwas"]["device"],
            }
        ),
    shell:
        "python -m contig gwas {params.source} --pheno {input.pheno}"
        " --covar {input.covar} --chrom {params.chroms} --part-out {output}"
        " {params.options} --threads {threads} {params.loco} > {log} 2>&1"


rule gwas_gather:
    input:
        parts=expand("results/gwas/{{analysis}}/parts/{part}.parquet", part=GWAS_PARTS),
    output:
        sumstats=directory("results/gwas/{analysis}/sumstats"),
        combined="results/gwas/{analysis}/assoc.combined.parquet",
        combined_tsv="results/gwas/{analysis}/assoc.combined.tsv.gz",
    log:
        "logs/gwas/{analysis}/gather.log",
    benchmark:
        "benchmarks/gwas/{analysis}/gather.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 2
    resources:
        **job_resources("gwas_gather"),
    params:
        out=subpath(output.combined, strip_suffix=".combined.parquet"),
        # the genome build GWAS-SSF metadata records: the one the genotypes are on (prs.genome_build)
        options=command_options(
            {
                "--formats": config["gwas"]["formats"],
                "--genome-assembly": (
                    config["prs"]["genome_build"] or "NR"
                    if "ssf" in config["gwas"]["formats"]
                    else None
                ),
            }
        ),
    shell:
        "python -m contig gwas-gather --parts {input.parts} --out {params.out}"
        " --per-pheno-dir {output.sumstats} {params.options} --threads {threads}"
        " > {log} 2>&1"


rule gwas_summary:
    input:
        sumstats="results/gwas/{analysis}/sumstats",
        combined="results/gwas/{analysis}/assoc.combined.parquet",
    output:
        report(
            "results/gwas/{analysis}/assoc.summary.tsv",
            caption="../report/gwas_summary.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "table": "per-phenotype summary"},
        ),
    log:
        "logs/gwas/{analysis}/summary.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options({"--threshold": config["gwas"]["threshold"]}),
    shell:
        "python -m contig gwas-summary --sumstats-dir {input.sumstats}"
        " --combined {input.combined} {params.options} --out {output} > {log} 2>&1"


rule clump:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        sumstats="results/gwas/{analysis}/assoc.combined.parquet",
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
    output:
        loci=report(
            "results/gwas/{analysis}/loci.tsv",
            caption="../report/loci.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "table": "lead loci"},
        ),
        clumps="results/gwas/{analysis}/loci.clumps.tsv",
        summary="results/gwas/{analysis}/loci.summary.tsv",
    log:
        "logs/gwas/{analysis}/clump.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        prefix=subpath(output.loci, strip_suffix=".tsv"),
        options=clump_options("LOG10P"),
    shell:
        "python -m contig clump --sumstats {input.sumstats} --bfile {params.bfile}"
        " --keep {input.pheno} --out {params.prefix} {params.options} > {log} 2>&1"


rule gwas_plots:
    input:
        sumstats="results/gwas/{analysis}/assoc.combined.parquet",
        loci="results/gwas/{analysis}/loci.tsv",
    output:
        manhattan=report(
            "results/gwas/{analysis}/combined.manhattan.png",
            caption="../report/manhattan.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "figure": "Manhattan"},
        ),
        qq=report(
            "results/gwas/{analysis}/combined.qq.png",
            caption="../report/qq.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "figure": "QQ"},
        ),
    log:
        "logs/gwas/{analysis}/plots.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        out=subpath(output.manhattan, strip_suffix=".manhattan.png"),
        options=command_options(
            {"--threshold": config["gwas"]["threshold"], "--p-column": "LOG10P"}
        ),
        test="min p x k over phenotypes",
    shell:
        "python -m contig gwas-plots --sumstats {input.sumstats} --loci {input.loci}"
        " --out {params.out} {params.options}"
        " --title '{wildcards.analysis}: {params.test}' > {log} 2>&1"


# The joint test of all phenotypes (an exact multivariate F test per variant, column
# LOG10P_JOINT of the combined table): its loci and figures, next to min p x k's.


use rule clump as clump_joint with:
    output:
        loci=report(
            "results/gwas/{analysis}/loci.joint.tsv",
            caption="../report/loci_joint.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "table": "lead loci, joint test"},
        ),
        clumps="results/gwas/{analysis}/loci.joint.clumps.tsv",
        summary="results/gwas/{analysis}/loci.joint.summary.tsv",
    log:
        "logs/gwas/{analysis}/clump_joint.log",
    params:
        options=clump_options("LOG10P_JOINT"),


use rule gwas_plots as gwas_plots_joint with:
    input:
        sumstats="results/gwas/{analysis}/assoc.combined.parquet",
        loci="results/gwas/{analysis}/loci.joint.tsv",
    output:
        manhattan=report(
            "results/gwas/{analysis}/joint.manhattan.png",
            caption="../report/manhattan_joint.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "figure": "Manhattan, joint test"},
        ),
        qq=report(
            "results/gwas/{analysis}/joint.qq.png",
            caption="../report/qq_joint.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "figure": "QQ, joint test"},
        ),
    log:
        "logs/gwas/{analysis}/plots_joint.log",
    params:
        options=command_options(
            {"--threshold": config["gwas"]["threshold"], "--p-column": "LOG10P_JOINT"}
        ),
        test="joint F test of all phenotypes",
