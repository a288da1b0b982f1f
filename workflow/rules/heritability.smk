# SNP heritability of each embedding phenotype the GWAS tests: randomized Haseman-Elston
# regression on the QC'd genotypes (the GWAS covariates projected out) and LD score regression on
# the GWAS summary statistics with LD scores from the cohort itself (window in kb: no genetic map
# is assumed); on simulated cohorts also RHE on the simulator's true traits against their planted
# h². A locus-free comparison of the methods, shown in the report category of the loci.

from contig.simulate.config import TRAITS

HERITABILITY = config["heritability"]
HERITABILITY_CATEGORY = "9. Loci"


rule h2_rhe:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        pheno="results/gwas/{method}/phenotypes.pheno.tsv",
        covar="results/gwas/{method}/phenotypes.covar.tsv",
    output:
        "results/heritability/{method}.rhe.tsv",
    log:
        "logs/heritability/{method}.rhe.log",
    benchmark:
        "benchmarks/heritability/{method}.rhe.tsv"
    conda:
        "../../envs/genetics.yaml"
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        options=command_options(
            {
                "--maf": HERITABILITY["maf"],
                "--probes": HERITABILITY["probes"],
                "--jackknife-blocks": HERITABILITY["jackknife_blocks"],
                "--seed": HERITABILITY["seed"],
            }
        ),
    shell:
        "python -m contig h2-rhe --bfile {params.bfile} --pheno {input.pheno}"
        " --covar {input.covar} {params.options} --out {output} > {log} 2>&1"


use rule h2_rhe as h2_rhe_truth with:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
        pheno=f"{SIMULATION}/traits.tsv",
        covar="results/gwas/covariates.tsv",
    output:
        "results/heritability/truth.rhe.tsv",
    log:
        "logs/heritability/truth.rhe.log",
    benchmark:
        "benchmarks/heritability/truth.rhe.tsv"
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        options=command_options(
            {
                "--pheno-cols": list(TRAITS),
                "--maf": HERITABILITY["maf"],
                "--probes": HERITABILITY["probes"],
                "--jackknife-blocks": HERITABILITY["jackknife_blocks"],
                "--seed": HERITABILITY["seed"],
            }
        ),


rule ld_scores:
    input:
        genotypes=multiext("results/genotypes/cohort", ".bed", ".bim", ".fam"),
    output:
        "results/heritability/ldscores.parquet",
    log:
        "logs/heritability/ldscores.log",
    benchmark:
        "benchmarks/heritability/ldscores.tsv"
    conda:
        "../../envs/genetics.yaml"
    params:
        bfile=subpath(input[0], strip_suffix=".bed"),
        options=command_options(
            {
                "--maf": HERITABILITY["maf"],
                "--ld-window-kb": HERITABILITY["ld_window_kb"],
            }
        ),
    shell:
        "python -m contig ld-scores --bfile {params.bfile} {params.options}"
        " --out {output} > {log} 2>&1"


rule h2_ldsc:
    input:
        sumstats="results/gwas/{method}/sumstats",
        ldscores="results/heritability/ldscores.parquet",
    output:
        "results/heritability/{method}.ldsc.tsv",
    log:
        "logs/heritability/{method}.ldsc.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        options=command_options(
            {"--jackknife-blocks": HERITABILITY["jackknife_blocks"]}
        ),
    shell:
        "python -m contig h2-ldsc --sumstats-dir {input.sumstats}"
        " --ldscores {input.ldscores} {params.options} --out {output} > {log} 2>&1"


rule h2_summary:
    input:
        rhe=expand("results/heritability/{method}.rhe.tsv", method=METHODS),
        ldsc=expand("results/heritability/{method}.ldsc.tsv", method=METHODS),
        truth_rhe="results/heritability/truth.rhe.tsv" if SIMULATED else [],
        truth=f"{SIMULATION}/truth.tsv" if SIMULATED else [],
    output:
        **{
            method: report(
                f"results/heritability/{method}.h2.tsv",
                caption="../report/heritability_table.rst",
                category=HERITABILITY_CATEGORY,
                subcategory="SNP heritability",
                labels={"table": f"h² of {method}"},
            )
            for method in METHODS
        },
        combined=report(
            "results/heritability/h2.tsv",
            caption="../report/heritability_table.rst",
            category=HERITABILITY_CATEGORY,
            subcategory="SNP heritability",
            labels={"table": "h² of every method (RHE, LDSC)"},
        ),
        figure=report(
            "results/heritability/h2.png",
            caption="../report/heritability_figure.rst",
            category=HERITABILITY_CATEGORY,
            subcategory="SNP heritability",
            labels={"figure": "h² per phenotype per method"},
        ),
    log:
        "logs/heritability/summary.log",
    conda:
        "../../envs/genetics.yaml"
    params:
        rhe=method_paths_arg("rhe"),
        ldsc=method_paths_arg("ldsc"),
        truth_rhe=optional_input_arg("--truth-estimates", "truth_rhe"),
        truth=optional_input_arg("--truth", "truth"),
        folder=subpath(output.combined, parent=True),
        options=command_options(
            {
                "--settings-text": (
                    f"heritability.maf {HERITABILITY['maf']}, probes "
                    f"{HERITABILITY['probes']}, jackknife blocks "
                    f"{HERITABILITY['jackknife_blocks']}, LD window "
                    f"{HERITABILITY['ld_window_kb']} kb; bars: ± 1.96 SE"
                )
            }
        ),
    shell:
        "python -m contig h2-summary --estimates {params.rhe} {params.ldsc}"
        " {params.truth_rhe} {params.truth} --out {output.combined}"
        " --per-analysis-dir {params.folder} --figure {output.figure}"
        " {params.options} > {log} 2>&1"
