# The demo cohort: genotypes, fundus images, covariates, PGS files and the planted truth.


rule simulate:
    output:
        bed=f"{config['simulate']['out']}/genotypes.bed",
        bim=f"{config['simulate']['out']}/genotypes.bim",
        fam=f"{config['simulate']['out']}/genotypes.fam",
        images=f"{config['simulate']['out']}/images.tsv",
        covariates=f"{config['simulate']['out']}/covariates.tsv",
        pgs=SIMULATED_PGS,
        genes=f"{config['simulate']['out']}/genes.tsv",
        labels=f"{config['simulate']['out']}/labels.tsv",
        truth=f"{config['simulate']['out']}/truth.tsv",
        traits=f"{config['simulate']['out']}/traits.tsv",
        simulation=f"{config['simulate']['out']}/simulation.json",
    log:
        "logs/simulate/simulate.log",
    benchmark:
        "benchmarks/simulate/simulate.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        out=lambda wildcards, output: Path(output.bed).parent,
        settings=config["simulate"],
    shell:
        "python -m contig simulate --out {params.out} --n-samples {params.settings[n_samples]}"
        " --n-snps {params.settings[n_snps]} --n-chromosomes {params.settings[n_chromosomes]}"
        " --image-size {params.settings[image_size]} --h2 {params.settings[h2]}"
        " --fst {params.settings[fst]} --missing-rate {params.settings[missing_rate]}"
        " --seed {params.settings[seed]} > {log} 2>&1"
