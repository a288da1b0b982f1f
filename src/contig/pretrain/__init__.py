"""Pretraining: losses, models, data, training, embedding and attributions (rules/pretrain.smk, embed.smk, explain.smk)."""
