# The demo cohort: genotypes, fundus images, covariates, PGS files and the planted truth.


rule simulate:
    output:
        bed=f"{SIMULATION}/genotypes.bed",
        bim=f"{SIMULATION}/genotypes.bim",
        fam=f"{SIMULATION}/genotypes.fam",
        images=f"{SIMULATION}/images.tsv",
        covariates=f"{SIMULATION}/covariates.tsv",
        pgs=SIMULATED_PGS,
        genes=f"{SIMULATION}/genes.tsv",
        labels=f"{SIMULATION}/labels.tsv",
        truth=f"{SIMULATION}/truth.tsv",
        traits=f"{SIMULATION}/traits.tsv",
        simulation=f"{SIMULATION}/simulation.json",
    log:
        "logs/simulate/simulate.log",
    benchmark:
        "benchmarks/simulate/simulate.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 2
    resources:
        **job_resources("simulate"),
    params:
        out=subpath(output.bed, parent=True),
        options=command_options(
            {
                "--n-samples": config["simulate"]["n_samples"],
                "--n-snps": config["simulate"]["n_snps"],
                "--n-chromosomes": config["simulate"]["n_chromosomes"],
                "--image-size": config["simulate"]["image_size"],
                "--h2": config["simulate"]["h2"],
                "--fst": config["simulate"]["fst"],
                "--missing-rate": config["simulate"]["missing_rate"],
                "--n-duplicates": config["simulate"]["n_duplicates"] or None,
                "--n-parent-offspring": config["simulate"]["n_parent_offspring"]
                or None,
                "--n-sibling-pairs": config["simulate"]["n_sibling_pairs"] or None,
                "--seed": config["simulate"]["seed"],
            }
        ),
    shell:
        "python -m contig simulate --out {params.out} {params.options} > {log} 2>&1"
