# Image manifest validation, fundus-field crop, resize, and the uint8 cache training reads.


rule images:
    input:
        manifest=INPUTS["images"],
        fam="results/genotypes/cohort.fam",
    output:
        multiext(
            f"results/images/cache_{config['images']['size']}",
            ".npy",
            ".index.tsv",
            ".excluded.tsv",
        ),
        qc=report(
            f"results/images/cache_{config['images']['size']}.qc.tsv",
            caption="../report/images_qc.rst",
            category="3. Images",
            labels={"table": "Image QC"},
        ),
        preview=f"results/images/cache_{config['images']['size']}.preview.png",
    log:
        "logs/images/images.log",
    benchmark:
        "benchmarks/images/images.tsv"
    conda:
        "../../envs/images.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        out=lambda wildcards, output: output.qc.removesuffix(".qc.tsv"),
        settings=config["images"],
        flags=" ".join(
            flag
            for flag, on in (
                ("--allow-outside-root", config["images"]["allow_outside_root"]),
                (
                    "--convert " + " ".join(config["images"]["convert"]),
                    bool(config["images"]["convert"]),
                ),
            )
            if on
        ),
    shell:
        "python -m contig images --manifest {input.manifest} --keep {input.fam}"
        " --out {params.out} --size {params.settings[size]}"
        " --on-error {params.settings[on_error]}"
        " --brightness-z {params.settings[brightness_z]} --workers {threads}"
        " {params.flags} > {log} 2>&1"
