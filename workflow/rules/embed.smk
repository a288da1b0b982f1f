# Embeddings for GWAS: each person embedded by a model that did not train on them. The analysis
# is a method (the eye of embed.eye, everyone) or <method>_<eye> (that eye of the people with both
# eyes, for the replication across eyes).


rule embed:
    input:
        cache=f"{IMAGE_CACHE}.npy",
        index=f"{IMAGE_CACHE}.index.tsv",
        models=fold_models,
    output:
        embeddings="results/embed/{analysis}.parquet",
        alignment=report(
            "results/embed/{analysis}.alignment.tsv",
            caption="../report/alignment.rst",
            category="5. Embeddings",
            subcategory="{analysis}",
            labels={"analysis": "{analysis}", "table": "alignment of the fold models"},
        ),
    log:
        "logs/embed/{analysis}.log",
    benchmark:
        "benchmarks/embed/{analysis}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        **INFERENCE_GPU_RESOURCES,
        **job_resources("embed"),
    params:
        images=subpath(input.cache, strip_suffix=".npy"),
        checkpoints=checkpoint_args,
        options=embed_options,
    shell:
        "python -m contig embed --images {params.images} {params.checkpoints}"
        " --out {output.embeddings} {params.options} --people test --threads {threads}"
        " > {log} 2>&1"
