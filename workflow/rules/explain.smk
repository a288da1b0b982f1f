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
        truth=f"{SIMULATION}/truth.tsv" if SIMULATED else [],
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
        **INFERENCE_GPU_RESOURCES,
        **job_resources("explain"),
    params:
        images=subpath(input.cache, strip_suffix=".npy"),
        checkpoints=checkpoint_args,
        modalities=modality_args,
        truth=optional_input_arg("--truth", "truth"),
        out=subpath(output.features, strip_suffix=".features.tsv"),
        options=command_options(
            {
                "--window-kb": config["evaluate"]["window_kb"] if SIMULATED else None,
                "--n-people": config["explain"]["n_people"],
                "--n-reference": config["explain"]["n_reference"],
                "--steps": config["explain"]["steps"],
                "--noise-tunnel-samples": config["explain"]["noise_tunnel_samples"],
                "--top-k": config["explain"]["top_k"],
                "--saliency": (
                    config["explain"]["saliency"]
                    if config["report"]["individual_level"]
                    else 0
                ),
                "--seed": config["pretrain"]["seed"],
            }
        ),
    shell:
        "python -m contig explain --images {params.images} {params.checkpoints}"
        " {params.modalities} --bim {input.bim} {params.truth} --out {params.out}"
        " {params.options} --threads {threads} > {log} 2>&1"
