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


rule embed_eye:
    """One eye's embeddings of the people with both eyes, for the replication across eyes."""
    input:
        cache=f"{IMAGE_CACHE}.npy",
        index=f"{IMAGE_CACHE}.index.tsv",
        models=lambda wildcards: expand(
            "results/pretrain/{method}/{fold}/model.pt",
            method=wildcards.method,
            fold=FOLDS,
        ),
    output:
        "results/embed/{method}_{eye}.parquet",
    log:
        "logs/embed/{method}_{eye}.log",
    benchmark:
        "benchmarks/embed/{method}_{eye}.tsv"
    wildcard_constraints:
        method="contig|simclr|random",
        eye="left|right",
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
    shell:
        "python -m contig embed --images {params.images} {params.checkpoints}"
        " --out {output} --eye {wildcards.eye} --both-eyes-only --people test"
        " --threads {threads} > {log} 2>&1"
