# Embeddings for GWAS: each person embedded by a model that did not train on them.


rule embed:
    input:
        cache=f"{IMAGE_CACHE}.npy",
        index=f"{IMAGE_CACHE}.index.tsv",
        models=lambda wildcards: expand(
            "results/pretrain/{method}/{fold}/model.pt",
            method=wildcards.method,
            fold=FOLDS,
        ),
    output:
        "results/embed/{method}.parquet",
    log:
        "logs/embed/{method}.log",
    benchmark:
        "benchmarks/embed/{method}.tsv"
    wildcard_constraints:
        method="contig|simclr|random",
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        **GPU_RESOURCES,
        mem_mb=8000,
        runtime=120,
    params:
        images=lambda wildcards, input: input.cache.removesuffix(".npy"),
        checkpoints=lambda wildcards, input: " ".join(
            f"--checkpoint {m}" for m in input.models
        ),
        eye=config["embed"]["eye"],
    shell:
        "python -m contig embed --images {params.images} {params.checkpoints}"
        " --out {output} --eye {params.eye} --people test --threads {threads}"
        " > {log} 2>&1"
