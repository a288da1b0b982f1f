# Image manifest validation, fundus-field crop, resize, and the uint8 cache training reads.


rule images:
    input:
        manifest=INPUTS["images"],
        fam="results/genotypes/cohort.fam",
    output:
        multiext(IMAGE_CACHE, ".npy", ".index.tsv", ".excluded.tsv"),
        qc=report(
            f"{IMAGE_CACHE}.qc.tsv",
            caption="../report/images_qc.rst",
            category="3. Images",
            labels={"table": "Image QC"},
        ),
        preview=f"{IMAGE_CACHE}.preview.png",
    log:
        "logs/images/images.log",
    benchmark:
        "benchmarks/images/images.tsv"
    conda:
        "../../envs/images.yaml"
    threads: 2
    resources:
        **job_resources("images"),
    params:
        out=subpath(output.qc, strip_suffix=".qc.tsv"),
        options=command_options(
            {
                "--size": config["images"]["size"],
                "--on-error": config["images"]["on_error"],
                "--brightness-z": config["images"]["brightness_z"],
                "--convert": config["images"]["convert"],
                "--allow-outside-root": config["images"]["allow_outside_root"],
            }
        ),
    shell:
        "python -m contig images --manifest {input.manifest} --keep {input.fam}"
        " --out {params.out} {params.options} --workers {threads} > {log} 2>&1"
