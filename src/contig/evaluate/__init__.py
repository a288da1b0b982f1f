"""Evaluation: probes, truth check, replication across eyes, the comparison table (rules/evaluate.smk)."""
