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
    wildcard_constraints:
        method="contig|simclr|random",
        fold=r"fold\d+|holdout",
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        **GPU_RESOURCES,
        mem_mb=16000,
        runtime=24 * 60,
    params:
        images=lambda wildcards, input: input.cache.removesuffix(".npy"),
        out=lambda wildcards, output: Path(output.model).parent,
        modalities=lambda wildcards, input: " ".join(
            f"--modality {Path(p).stem}={p}" for p in input.modalities
        ),
        split=split_arg,
        settings=config["pretrain"],
        size=config["images"]["size"],
        flags=" ".join(
            flag
            for flag, on in (
                (
                    "--learnable-temperature",
                    config["pretrain"]["learnable_temperature"],
                ),
                (
                    f"--weights {config['pretrain']['weights']}",
                    config["pretrain"]["weights"],
                ),
            )
            if on
        ),
    shell:
        "python -m contig train --images {params.images} {params.modalities}"
        " --method {wildcards.method} --out {params.out} {params.split}"
        " --val-fraction {params.settings[val_fraction]}"
        " --modalities-join {params.settings[join]} --arch {params.settings[arch]}"
        " --image-size {params.size} --epochs {params.settings[epochs]}"
        " --batch-size {params.settings[batch_size]} --accumulate {params.settings[accumulate]}"
        " --lr {params.settings[lr]} --weight-decay {params.settings[weight_decay]}"
        " --warmup-epochs {params.settings[warmup_epochs]}"
        " --temperature {params.settings[temperature]} --alpha {params.settings[alpha]}"
        " --hidden-layers {params.settings[hidden_layers]}"
        " --genetic-hidden {params.settings[genetic_hidden]}"
        " --proj-hidden {params.settings[proj_hidden]} --proj-dim {params.settings[proj_dim]}"
        " --workers {params.settings[workers]} --threads {threads} --seed {params.settings[seed]}"
        " --progress off {params.flags} > {log} 2>&1"
