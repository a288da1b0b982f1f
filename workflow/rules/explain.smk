# Explainability: Integrated Gradients of each held-out person's contrastive loss, attributed to
# the genetic inputs of the ContIG models (and, where individual-level output is allowed, image
# saliency maps).


rule explain:
    input:
        cache=f"{IMAGE_CACHE}.npy",
        index=f"{IMAGE_CACHE}.index.tsv",
        models=expand("results/pretrain/contig/{fold}/model.pt", fold=FOLDS),
        modalities=expand(
            "results/scores/{modality}.npz", modality=config["pretrain"]["modalities"]
        ),
        bim="results/genotypes/cohort.bim",
        truth=f"{config['simulate']['out']}/truth.tsv" if SIMULATED else [],
    output:
        **(
            {
                "precision": explain_report(
                    "precision.tsv",
                    "explain_precision",
                    {"table": "precision@k against the planted variants"},
                )
            }
            if SIMULATED
            else {}
        ),
        **(
            {
                "saliency": explain_report(
                    "saliency.png", "explain_saliency", {"figure": "image saliency"}
                )
            }
            if config["report"]["individual_level"] and config["explain"]["saliency"]
            else {}
        ),
        features=explain_report(
            "features.tsv", "explain_features", {"table": "attribution per feature"}
        ),
        modalities=explain_report(
            "modalities.tsv",
            "explain_modalities",
            {"table": "attribution per modality"},
        ),
        summary="results/explain/contig/attributions.summary.tsv",
        top=explain_report(
            "top_features.png", "explain_top", {"figure": "top attributed features"}
        ),
        shares=explain_report(
            "modalities.png", "explain_modalities", {"figure": "share per modality"}
        ),
    log:
        "logs/explain/contig.log",
    benchmark:
        "benchmarks/explain/contig.tsv"
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
        modalities=lambda wildcards, input: " ".join(
            f"--modality {Path(p).stem}={p}" for p in input.modalities
        ),
        truth=lambda wildcards, input: (
            f"--truth {input.truth} --window-kb {config['evaluate']['window_kb']}"
            if input.truth
            else ""
        ),
        saliency=(
            config["explain"]["saliency"]
            if config["report"]["individual_level"]
            else 0
        ),
        top_k=" ".join(str(k) for k in config["explain"]["top_k"]),
        out=lambda wildcards, output: output.features.removesuffix(".features.tsv"),
        settings=config["explain"],
        seed=config["pretrain"]["seed"],
    shell:
        "python -m contig explain --images {params.images} {params.checkpoints}"
        " {params.modalities} --bim {input.bim} {params.truth} --out {params.out}"
        " --n-people {params.settings[n_people]} --n-reference {params.settings[n_reference]}"
        " --steps {params.settings[steps]}"
        " --noise-tunnel-samples {params.settings[noise_tunnel_samples]}"
        " --top-k {params.top_k} --saliency {params.saliency} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"
