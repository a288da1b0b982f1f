# GWAS of embedding-derived phenotypes: covariates, phenotypes, association, clumping, plots.


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
        embeddings="results/embed/{method}.parquet",
        covar="results/gwas/covariates.tsv",
    output:
        pheno="results/gwas/{method}/phenotypes.pheno.tsv",
    log:
        "logs/gwas/{method}/phenotypes.log",
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
        pheno="results/gwas/{method}/phenotypes.pheno.tsv",
        covar="results/gwas/covariates.tsv",
    output:
        "results/gwas/{method}/step1.loco.tsv.gz",
    log:
        "logs/gwas/{method}/step1.log",
    benchmark:
        "benchmarks/gwas/{method}/step1.tsv"
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
        pheno="results/gwas/{method}/phenotypes.pheno.tsv",
        covar="results/gwas/covariates.tsv",
        loco=loco_input,
    output:
        combined="results/gwas/{method}/assoc.combined.parquet",
        summary=report(
            "results/gwas/{method}/assoc.summary.tsv",
            caption="../report/gwas_summary.rst",
            category="5. GWAS",
            subcategory="{method}",
            labels={"method": "{method}", "table": "per-phenotype summary"},
        ),
    log:
        "logs/gwas/{method}/gwas.log",
    benchmark:
        "benchmarks/gwas/{method}/gwas.tsv"
    conda:
        "../../envs/genetics.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        bfile=lambda wildcards, input: input.genotypes[0].removesuffix(".bed"),
        out=lambda wildcards, output: output.combined.removesuffix(".combined.parquet"),
        loco=lambda wildcards, input: f"--loco {input.loco}" if input.loco else "",
        settings=config["gwas"],
    shell:
        "python -m contig gwas --bfile {params.bfile} --pheno {input.pheno}"
        " --covar {input.covar} --out {params.out} --maf {params.settings[maf]}"
        " --dtype {params.settings[dtype]} --chunk-size {params.settings[chunk_size]}"
        " {params.loco} > {log} 2>&1"


rule clump:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        sumstats="results/gwas/{method}/assoc.combined.parquet",
        pheno="results/gwas/{method}/phenotypes.pheno.tsv",
    output:
        clumps="results/gwas/{method}/loci.clumps.tsv",
        loci=report(
            "results/gwas/{method}/loci.loci.tsv",
            caption="../report/loci.rst",
            category="5. GWAS",
            subcategory="{method}",
            labels={"method": "{method}", "table": "lead loci"},
        ),
        summary="results/gwas/{method}/loci.clump_summary.tsv",
    log:
        "logs/gwas/{method}/clump.log",
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
        sumstats="results/gwas/{method}/assoc.combined.parquet",
        loci="results/gwas/{method}/loci.loci.tsv",
    output:
        manhattan=report(
            "results/gwas/{method}/combined.manhattan.png",
            caption="../report/manhattan.rst",
            category="5. GWAS",
            subcategory="{method}",
            labels={"method": "{method}", "figure": "Manhattan"},
        ),
        qq=report(
            "results/gwas/{method}/combined.qq.png",
            caption="../report/qq.rst",
            category="5. GWAS",
            subcategory="{method}",
            labels={"method": "{method}", "figure": "QQ"},
        ),
    log:
        "logs/gwas/{method}/plots.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        out=lambda wildcards, output: output.manhattan.removesuffix(".manhattan.png"),
    shell:
        "python -m contig gwas-plots --sumstats {input.sumstats} --loci {input.loci}"
        " --out {params.out} --title '{wildcards.method}: min p x k over phenotypes'"
        " > {log} 2>&1"
