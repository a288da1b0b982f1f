# Contrastive pretraining: one job per method x fold (cross-fitting) or per method (holdout).


rule train:
    input:
        cache=f"{IMAGE_CACHE}.npy",
        index=f"{IMAGE_CACHE}.index.tsv",
        modalities=expand(
            "results/scores/{modality}.npz", modality=config["pretrain"]["modalities"]
        ),
    output:
        model="results/pretrain/{method}/{fold}/model.pt",
        split="results/pretrain/{method}/{fold}/split.tsv",
        metrics=report(
            "results/pretrain/{method}/{fold}/metrics.tsv",
            caption="../report/metrics.rst",
            category="4. Pretraining",
            subcategory="{method}",
            labels={"method": "{method}", "fold": "{fold}", "table": "metrics"},
        ),
        curves=report(
            "results/pretrain/{method}/{fold}/curves.png",
            caption="../report/curves.rst",
            category="4. Pretraining",
            subcategory="{method}",
            labels={
                "method": "{method}",
                "fold": "{fold}",
                "figure": "training curves",
            },
        ),
    log:
        "logs/pretrain/{method}/{fold}.log",
    benchmark:
        "benchmarks/pretrain/{method}/{fold}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        **GPU_RESOURCES,
        **job_resources("train"),
        # data loader processes: they do not change the model, so not a rerun trigger
        workers=config["pretrain"]["workers"],
    params:
        launcher=train_launcher,
        images=subpath(input.cache, strip_suffix=".npy"),
        out=subpath(output.model, parent=True),
        modalities=modality_args,
        split=split_arg,
        options=command_options(
            {
                "--val-fraction": config["pretrain"]["val_fraction"],
                "--modalities-join": config["pretrain"]["join"],
                "--arch": config["pretrain"]["arch"],
                "--weights": config["pretrain"]["weights"],
                "--image-size": config["images"]["size"],
                "--epochs": config["pretrain"]["epochs"],
                "--batch-size": config["pretrain"]["batch_size"],
                "--accumulate": config["pretrain"]["accumulate"],
                "--grad-cache-chunk": config["pretrain"]["grad_cache_chunk"],
                "--activation-checkpointing": config["pretrain"][
                    "activation_checkpointing"
                ],
                "--lr": config["pretrain"]["lr"],
                "--weight-decay": config["pretrain"]["weight_decay"],
                "--warmup-epochs": config["pretrain"]["warmup_epochs"],
                "--temperature": config["pretrain"]["temperature"],
                "--learnable-temperature": config["pretrain"]["learnable_temperature"],
                "--alpha": config["pretrain"]["alpha"],
                "--hidden-layers": config["pretrain"]["hidden_layers"],
                "--genetic-hidden": config["pretrain"]["genetic_hidden"],
                "--proj-hidden": config["pretrain"]["proj_hidden"],
                "--proj-dim": config["pretrain"]["proj_dim"],
                "--input-dropout": config["pretrain"]["input_dropout"],
                "--genetic-dropout": config["pretrain"]["genetic_dropout"],
                "--genetic-weight-decay": config["pretrain"]["genetic_weight_decay"],
                "--image-heads": config["pretrain"]["image_heads"],
                "--select-epoch": config["pretrain"]["select_epoch"],
                "--seed": config["pretrain"]["seed"],
            }
        ),
    shell:
        "{params.launcher} train --images {params.images} {params.modalities}"
        " --method {wildcards.method} --out {params.out} {params.split} {params.options}"
        " --workers {resources.workers} --threads {threads} --progress off > {log} 2>&1"
