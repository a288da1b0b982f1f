# GWAS of embedding-derived phenotypes: covariates, phenotypes, association (scattered over
# chromosome groups, then gathered), clumping, plots. {analysis} is a method (contig, simclr,
# random) or, for the replication across eyes, <method>_left / <method>_right.


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
        quantitative=" ".join(config["covariates"]["quantitative"]),
        categorical=" ".join(config["covariates"]["categorical"]),
        n_pcs=min(config["gwas"]["genetic_pcs"], config["pca"]["n_pcs"]),
    shell:
        "python -m contig covariates --covariates {input.covariates}"
        " --quantitative {params.quantitative} --categorical {params.categorical}"
        " --eigenvec {input.eigenvec} --n-pcs {params.n_pcs} --out {output} > {log} 2>&1"


rule phenotypes:
    input:
        embeddings="results/embed/{analysis}.parquet",
        covar="results/gwas/covariates.tsv",
    output:
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
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
        out=lambda wildcards, output: output.pheno.removesuffix(".pheno.tsv"),
        which=(
            f"--n-pcs {config['gwas']['n_pcs']}"
            if config["gwas"]["phenotypes"] == "pcs"
            else "--all-dims"
        ),
        rint="" if config["gwas"]["rint"] else "--no-rint",
    shell:
        "python -m contig phenotypes --embeddings {input.embeddings} --covar {input.covar}"
        " --out {params.out} {params.which} {params.rint} > {log} 2>&1"


rule gwas_step1:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
        covar="results/gwas/covariates.tsv",
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
        mem_mb=8000,
        runtime=240,
    params:
        bfile=lambda wildcards, input: input.genotypes[0].removesuffix(".bed"),
        out=lambda wildcards, output: output[0].removesuffix(".loco.tsv.gz"),
    shell:
        "python -m contig gwas-step1 --bfile {params.bfile} --pheno {input.pheno}"
        " --covar {input.covar} --out {params.out} > {log} 2>&1"


rule gwas:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
        covar="results/gwas/covariates.tsv",
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
        mem_mb=8000,
        runtime=240,
    params:
        bfile=lambda wildcards, input: input.genotypes[0].removesuffix(".bed"),
        chroms=lambda wildcards: " ".join(GWAS_PARTS[wildcards.part]),
        loco=lambda wildcards, input: f"--loco {input.loco}" if input.loco else "",
        settings=config["gwas"],
    shell:
        "python -m contig gwas --bfile {params.bfile} --pheno {input.pheno}"
        " --covar {input.covar} --chrom {params.chroms} --part-out {output}"
        " --maf {params.settings[maf]} --dtype {params.settings[dtype]}"
        " --chunk-size {params.settings[chunk_size]} --threads {threads} {params.loco}"
        " > {log} 2>&1"


rule gwas_gather:
    input:
        parts=expand("results/gwas/{{analysis}}/parts/{part}.parquet", part=GWAS_PARTS),
    output:
        sumstats=directory("results/gwas/{analysis}/sumstats"),
        combined="results/gwas/{analysis}/assoc.combined.parquet",
        combined_tsv="results/gwas/{analysis}/assoc.combined.tsv.gz",
        summary=report(
            "results/gwas/{analysis}/assoc.summary.tsv",
            caption="../report/gwas_summary.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "table": "per-phenotype summary"},
        ),
    log:
        "logs/gwas/{analysis}/gather.log",
    benchmark:
        "benchmarks/gwas/{analysis}/gather.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        out=lambda wildcards, output: output.combined.removesuffix(".combined.parquet"),
        formats=" ".join(config["gwas"]["formats"]),
    shell:
        "python -m contig gwas-gather --parts {input.parts} --out {params.out}"
        " --per-pheno-dir {output.sumstats} --formats {params.formats} --threads {threads}"
        " > {log} 2>&1"


rule clump:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        sumstats="results/gwas/{analysis}/assoc.combined.parquet",
        pheno="results/gwas/{analysis}/phenotypes.pheno.tsv",
    output:
        clumps="results/gwas/{analysis}/loci.clumps.tsv",
        loci=report(
            "results/gwas/{analysis}/loci.loci.tsv",
            caption="../report/loci.rst",
            category="6. GWAS",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "table": "lead loci"},
        ),
        summary="results/gwas/{analysis}/loci.clump_summary.tsv",
    log:
        "logs/gwas/{analysis}/clump.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        bfile=lambda wildcards, input: input.genotypes[0].removesuffix(".bed"),
        out=lambda wildcards, output: output.clumps.removesuffix(".clumps.tsv"),
        settings=config["clump"],
    shell:
        "python -m contig clump --sumstats {input.sumstats} --bfile {params.bfile}"
        " --keep {input.pheno} --out {params.out} --p1 {params.settings[p1]}"
        " --p2 {params.settings[p2]} --r2 {params.settings[r2]} --kb {params.settings[kb]}"
        " > {log} 2>&1"


rule gwas_plots:
    input:
        sumstats="results/gwas/{analysis}/assoc.combined.parquet",
        loci="results/gwas/{analysis}/loci.loci.tsv",
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
        out=lambda wildcards, output: output.manhattan.removesuffix(".manhattan.png"),
    shell:
        "python -m contig gwas-plots --sumstats {input.sumstats} --loci {input.loci}"
        " --out {params.out} --title '{wildcards.analysis}: min p x k over phenotypes'"
        " > {log} 2>&1"
