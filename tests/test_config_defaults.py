"""One default per setting: every config key's schema default equals the default of the library
setting it feeds (the settings dataclass that also gives the command's argparse default), or the
key is a workflow-level choice with no command-line twin, listed here with the reason."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import yaml

from helpers.workflow import ROOT

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())

# config key -> "module:Class.field" of the library setting it is passed to
LIBRARY_DEFAULTS = {
    **{f"simulate.{k}": f"contig.simulate.config:SimulationConfig.{k}"
       for k in ("n_samples", "n_snps", "n_chromosomes", "image_size", "h2", "fst", "missing_rate",
                 "seed")},
    **{f"simulate.{k}": f"contig.simulate.config:SimulationConfig.{k}"
       for k in ("n_duplicates", "n_parent_offspring", "n_sibling_pairs")},
    **{f"qc.{k}": f"contig.genotypes.sample_filters:SampleFilterSettings.{k}"
       for k in ("king_cutoff", "ancestry_sd", "ancestry_pcs")},
    "pca.n_pcs": "contig.genotypes.pca:PCASettings.n_pcs",
    "pca.seed": "contig.genotypes.pca:PCASettings.seed",
    "prs.min_overlap": "contig.scores.prs:PrsSettings.min_overlap",
    "prs.on_low_overlap": "contig.scores.prs:PrsSettings.on_low_overlap",
    "prs.keep_ambiguous": "contig.scores.prs:PrsSettings.keep_ambiguous",
    "prs.mean_imputation": "contig.scores.prs:PrsSettings.mean_imputation",
    "burden.max_maf": "contig.scores.burden:BurdenSettings.max_maf",
    "burden.mode": "contig.scores.burden:BurdenSettings.mode",
    "burden.min_carriers": "contig.scores.burden:BurdenSettings.min_carriers",
    "images.on_error": "contig.images.cache:ImageCacheSettings.on_error",
    "images.brightness_z": "contig.images.cache:ImageCacheSettings.brightness_z",
    **{f"pretrain.{k}": f"contig.pretrain.config:TrainConfig.{k}"
       for k in ("join", "val_fraction", "arch", "weights", "epochs", "batch_size", "accumulate",
                 "grad_cache_chunk", "activation_checkpointing",
                 "lr", "weight_decay", "warmup_epochs", "temperature", "learnable_temperature",
                 "alpha", "hidden_layers", "genetic_hidden", "proj_hidden", "proj_dim",
                 "input_dropout", "genetic_dropout", "genetic_weight_decay", "image_heads",
                 "select_epoch", "workers", "seed")},
    "pretrain.holdout": "contig.pretrain.config:TrainConfig.split",
    "embed.eye": "contig.pretrain.embed:EmbedSettings.eye",
    "embed.align": "contig.pretrain.embed:EmbedSettings.align",
    "gwas.n_pcs": "contig.gwas.phenotypes:PhenotypeSettings.n_pcs",
    "gwas.rint": "contig.gwas.phenotypes:PhenotypeSettings.rint",
    "gwas.maf": "contig.gwas.association:ScanSettings.maf",
    "gwas.dtype": "contig.gwas.association:ScanSettings.dtype",
    "gwas.chunk_size": "contig.gwas.association:ScanSettings.chunk_size",
    "gwas.device": "contig.gwas.association:ScanSettings.device",
    "gwas.min_info": "contig.gwas.dosage:DosageFilters.min_info",
    "gwas.min_mac": "contig.gwas.dosage:DosageFilters.min_mac",
    "gwas.step1_min_maf": "contig.gwas.step1:Step1Settings.min_maf",
    "gwas.step1_mem_mb": "contig.gwas.step1:Step1Settings.mem_mb",
    "gwas.threshold": "contig.gwas.summary:SummarySettings.threshold",
    "clump.p2": "contig.gwas.clump:ClumpSettings.p2",
    "clump.r2": "contig.gwas.clump:ClumpSettings.r2",
    "clump.kb": "contig.gwas.clump:ClumpSettings.kb",
    "explain.n_people": "contig.pretrain.attribution:ExplainSettings.n_people",
    "explain.n_reference": "contig.pretrain.attribution:ExplainSettings.n_reference",
    "explain.steps": "contig.pretrain.attribution:ExplainSettings.steps",
    "explain.noise_tunnel_samples": "contig.pretrain.attribution:ExplainSettings.noise_samples",
    "explain.top_k": "contig.pretrain.attribution:ExplainSettings.top_k",
    "explain.saliency": "contig.pretrain.attribution:ExplainSettings.saliency",
    "evaluate.fractions": "contig.evaluate.probes:ProbeSettings.fractions",
    "evaluate.seeds": "contig.evaluate.probes:ProbeSettings.seeds",
    "evaluate.test_fraction": "contig.evaluate.probes:ProbeSettings.test_fraction",
    "evaluate.l2": "contig.evaluate.probes:ProbeSettings.l2",
    "evaluate.inner_folds": "contig.evaluate.probes:ProbeSettings.inner_folds",
    "evaluate.bootstrap": "contig.evaluate.probes:ProbeSettings.bootstrap",
    "evaluate.interval_level": "contig.evaluate.probes:ProbeSettings.level",
    "evaluate.replication_alpha": "contig.evaluate.replicate:ReplicationSettings.alpha",
    "evaluate.window_kb": "contig.evaluate.truth:TruthSettings.window_kb",
    "loci.window_kb": "contig.loci.regional:RegionalSettings.window_kb",
    "loci.max_regional_plots": "contig.loci.regional:RegionalSettings.max_plots",
    **{f"heritability.{k}": f"contig.heritability.settings:HeritabilitySettings.{k}"
       for k in ("maf", "probes", "jackknife_blocks", "ld_window_kb", "seed")},
}

# Keys with no library twin: they choose inputs, jobs or outputs of the workflow itself.
WORKFLOW_ONLY = {
    **{f"inputs.{k}": "input paths" for k in ("simulate", "genotypes", "images", "covariates",
                                                "pgs", "genes", "labels", "imputed",
                                                "imputed_sample")},
    "simulate.out": "where the simulator writes (a path)",
    "covariates.quantitative": "column names of the user's covariate sheet",
    "covariates.categorical": "column names of the user's covariate sheet",
    "qc.keep_imaged_only": "whether the rule passes the image manifest as --keep",
    "pca.color_by": "a figure option naming a user file",
    # plink-style filters: the command applies one only when its flag is given (plink2's
    # meaning); the key's default is the value the workflow recommends passing
    **{k: "plink-style filter flag, off unless given" for k in (
        "qc.mind", "qc.geno", "qc.maf", "qc.hwe", "pca.maf", "pca.indep_pairwise", "snps.maf",
        "snps.every_kth", "snps.indep_pairwise")},
    "snps.selection": "chooses which of two mutually exclusive flags the rule passes",
    "prs.genome_build": "an optional check, off unless given",
    "images.size": "required by the command (one cache per size)",
    "images.convert": "conversions, none unless named",
    "images.allow_outside_root": "a bare flag, off unless given",
    "pretrain.methods": "which training jobs exist",
    "pretrain.modalities": "which modality files the rule passes",
    "pretrain.n_folds": "how many training jobs (the command trains one fold)",
    "pretrain.gpus": "a SLURM resource request",
    "gwas.phenotypes": "selects --n-pcs or --all-dims",
    "gwas.genetic_pcs": "how many PC columns the covariates rule writes",
    "gwas.loco": "whether a step-1 job runs",
    "gwas.formats": "output files of the gather job; `contig gwas`/`gwas-gather` default to regenie's "
                    "per-phenotype layout, the workflow to the wide layout (config/README.md says why)",
    "gwas.scatter": "how many association jobs",
    "explain.enabled": "whether the explain job runs",
    "evaluate.compare_probes": "[] = the labels the probe summary has (the command's default)",
    "evaluate.replicate_eyes": "whether the per-eye GWAS jobs run",
    "report.individual_level": "what the report may show",
}


def schema_keys() -> dict[str, dict]:
    return {f"{section}.{key}": spec
            for section, body in SCHEMA["properties"].items()
            for key, spec in body.get("properties", {}).items()}


def library_default(target: str):
    module, rest = target.split(":")
    cls_name, field_name = rest.split(".")
    cls = getattr(importlib.import_module(module), cls_name)
    field = {f.name: f for f in dataclasses.fields(cls)}[field_name]
    if field.default is not dataclasses.MISSING:
        return field.default
    assert field.default_factory is not dataclasses.MISSING, f"{target} has no default"
    return field.default_factory()


def normalized(value):
    """Compare as the command line sees it: a tuple is a list, an empty path is no path."""
    if isinstance(value, tuple):
        return [normalized(v) for v in value]
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None if value == "" else value


def test_every_schema_key_is_accounted_for():
    keys = set(schema_keys())
    listed = set(LIBRARY_DEFAULTS) | set(WORKFLOW_ONLY)
    assert keys - listed == set(), "schema keys with no library default and no reason"
    assert listed - keys == set(), "listed keys the schema does not have"


@pytest.mark.parametrize("key", sorted(LIBRARY_DEFAULTS))
def test_schema_default_equals_the_library_default(key):
    spec = schema_keys()[key]
    assert "default" in spec, f"{key} has no default in the schema"
    assert normalized(spec["default"]) == normalized(library_default(LIBRARY_DEFAULTS[key])), key


def test_every_schema_key_has_a_description_and_numbers_have_bounds():
    for key, spec in schema_keys().items():
        assert spec.get("description"), f"{key} has no description"
        types = spec.get("type")
        types = types if isinstance(types, list) else [types]
        if {"number", "integer"} & set(types) and "enum" not in spec:
            assert "minimum" in spec or "exclusiveMinimum" in spec, f"{key} has no lower bound"
