# Helpers shared by all rules: config validation, input checks, paths and the contig command.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake_interface_executor_plugins.settings import ExecMode
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

SRC_DIR = Path(workflow.basedir).parent / "src"
sys.path.insert(0, str(SRC_DIR))

from contig.errors import InputError  # noqa: E402
from contig.runlock import clear_stale_locks, record_owner  # noqa: E402
from contig.sheets import load_schema, validate_sheet  # noqa: E402

validate(config, "../schemas/config.schema.yaml")

# A snakemake killed with -9 leaves its locks and the next run would refuse to start: remove
# them when the run that took them is gone (see contig.runlock).
if workflow.exec_mode == ExecMode.DEFAULT and not workflow.dryrun:
    stale = clear_stale_locks(".snakemake")
    if stale is not None:
        logger.warning(
            f"Removed the locks of an earlier snakemake run (pid {stale}) that was killed "
            "before releasing them; its incomplete jobs are rerun."
        )


onstart:
    record_owner(".snakemake")


INPUTS = config["inputs"]
SIMULATED = INPUTS["simulate"]


def schema_path(name):
    return str(Path(workflow.basedir) / "schemas" / f"{name}.schema.yaml")


def job_shell_prefix():
    """Rules run `python -m contig`: every job gets the contig sources on PYTHONPATH and, unless
    jobs run in per-rule conda envs (--sdm conda), the interpreter running Snakemake (the project
    venv) first on PATH."""
    prefix = f"set -euo pipefail; export PYTHONPATH='{SRC_DIR}'${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
        prefix += f"export PATH='{Path(sys.executable).parent}':$PATH; "
    return prefix


shell.prefix(job_shell_prefix())


def genotype_files(prefix):
    """The .bed/.bim/.fam files behind a prefix, or behind each per-chromosome prefix of a pattern."""
    if "{chrom}" in prefix:
        from contig.plinkio import expand_prefix_pattern

        prefixes = expand_prefix_pattern(prefix)
    else:
        prefixes = [prefix]
    return [f"{p}{ext}" for p in prefixes for ext in (".bed", ".bim", ".fam")]


def simulated_pgs_files():
    """The scoring files the simulator writes (their names follow from its settings)."""
    from contig.simulate import SimulationConfig

    folder = Path(config["simulate"]["out"]) / "pgs"
    return [str(folder / f"{pgs_id}.txt.gz") for pgs_id in SimulationConfig().pgs_ids()]


SIMULATED_PGS = simulated_pgs_files()


def pgs_files():
    """The PGS Catalog scoring files: a list from config, or the *.txt[.gz] files in a folder."""
    pgs = INPUTS["pgs"]
    if SIMULATED:
        return SIMULATED_PGS
    if isinstance(pgs, list):
        return pgs
    folder = Path(pgs)
    files = sorted(
        str(p) for p in folder.glob("*.txt*") if p.name.endswith((".txt", ".txt.gz"))
    )
    if not files:
        raise WorkflowError(
            f"config inputs.pgs: no *.txt or *.txt.gz scoring files in {pgs}"
        )
    return files


def check_user_inputs():
    """Before any job runs: every input file exists and every sheet matches its schema."""
    try:
        files = {"genotypes": genotype_files(INPUTS["genotypes"])}
    except InputError as error:
        raise WorkflowError(f"config inputs.genotypes: {error.one_line()}")
    files |= {key: [INPUTS[key]] for key in ("images", "covariates", "genes")}
    files["pgs"] = pgs_files()
    if INPUTS["labels"]:
        files["labels"] = [INPUTS["labels"]]
    for key, paths in files.items():
        for path in paths:
            if not Path(path).exists():
                raise WorkflowError(f"config inputs.{key}: file not found: {path}")
    for key in ("images", "covariates", "genes", "labels"):
        if key in files:
            try:
                validate_sheet(INPUTS[key], load_schema(schema_path(key)))
            except InputError as error:
                raise WorkflowError(f"config inputs.{key}: {error.one_line()}")


if not SIMULATED:
    check_user_inputs()


def genotype_inputs():
    if SIMULATED:
        return [f"{INPUTS['genotypes']}{ext}" for ext in (".bed", ".bim", ".fam")]
    return genotype_files(INPUTS["genotypes"])


def genotype_arg():
    """The --bfile argument: the prefix or the {chrom} pattern, quoted for the shell."""
    return f"'{INPUTS['genotypes']}'"


def indep_pairwise_arg(settings):
    window, step, r2 = settings
    return f"{window} {step} {r2}"


IMAGE_CACHE = f"results/images/cache_{config['images']['size']}"
METHODS = config["pretrain"]["methods"]
N_FOLDS = config["pretrain"]["n_folds"]
FOLDS = [f"fold{k}" for k in range(N_FOLDS)] if N_FOLDS > 1 else ["holdout"]
# SLURM --gpus for the GPU rules; nothing when training on the CPU.
GPU_RESOURCES = (
    {"gpu": config["pretrain"]["gpus"]} if config["pretrain"]["gpus"] else {}
)


def genotype_chromosomes():
    """The chromosomes of the input genotypes, in genome order (simulated: 1..n_chromosomes)."""
    if SIMULATED:
        return [str(c) for c in range(1, config["simulate"]["n_chromosomes"] + 1)]
    from contig.plinkio import chromosome_sort_key, read_bim

    chroms = set()
    for path in genotype_files(INPUTS["genotypes"])[1::3]:
        try:
            chroms.update(read_bim(path)["CHROM"].cast(str).unique().to_list())
        except InputError as error:
            raise WorkflowError(f"config inputs.genotypes: {error.one_line()}")
    if not chroms:
        raise WorkflowError(
            f"config inputs.genotypes: no variant in {INPUTS['genotypes']}"
        )
    return sorted(chroms, key=chromosome_sort_key)


def gwas_parts():
    """The GWAS scatter: part name -> chromosomes, config gwas.scatter contiguous groups (one
    chromosome each when scatter >= the number of chromosomes)."""
    chroms = genotype_chromosomes()
    n_parts = min(config["gwas"]["scatter"], len(chroms))
    size, extra = divmod(len(chroms), n_parts)
    parts, start = {}, 0
    for k in range(n_parts):
        group = chroms[start : start + size + (k < extra)]
        start += len(group)
        name = f"chr{group[0]}" if len(group) == 1 else f"chr{group[0]}-{group[-1]}"
        parts[name] = group
    return parts


GWAS_PARTS = gwas_parts()
EYES = ["left", "right"]


wildcard_constraints:
    analysis=r"(contig|simclr|random)(_left|_right)?",


def split_arg(wildcards):
    """--n-folds K --fold k for cross-fitting folds, --split TRAIN VAL TEST for the holdout."""
    if wildcards.fold == "holdout":
        return "--split " + " ".join(str(f) for f in config["pretrain"]["holdout"])
    return f"--n-folds {N_FOLDS} --fold {wildcards.fold.removeprefix('fold')}"


def loco_input(wildcards):
    """The LOCO predictions of gwas_step1 when config gwas.loco is on, else nothing."""
    if config["gwas"]["loco"]:
        return f"results/gwas/{wildcards.method}/step1.loco.tsv.gz"
    return []


LABELS = bool(INPUTS["labels"])
REPLICATE_EYES = config["evaluate"]["replicate_eyes"]
EXPLAIN = config["explain"]["enabled"] and "contig" in METHODS


def comparison_inputs(wildcards):
    """What the comparison table is built from: loci and training metrics of every method, plus
    the truth check (simulated cohorts), replication across eyes and probes where enabled.
    """
    inputs = {
        "loci": expand("results/gwas/{method}/loci.loci.tsv", method=METHODS),
        "metrics": expand(
            "results/pretrain/{method}/{fold}/metrics.tsv", method=METHODS, fold=FOLDS
        ),
    }
    if SIMULATED:
        inputs["truth"] = "results/evaluate/truth.tsv"
    if REPLICATE_EYES:
        inputs["replication"] = expand(
            "results/evaluate/replication/{method}.summary.tsv", method=METHODS
        )
    if LABELS:
        inputs["probes"] = "results/evaluate/probes.summary.tsv"
    return inputs


def comparison_args(wildcards, input):
    """The `contig compare` options for the inputs of comparison_inputs."""
    args = ["--loci", *(f"{m}={p}" for m, p in zip(METHODS, input.loci))]
    # input.metrics is METHODS x FOLDS in expand order: one comma-separated list per method
    metrics = list(input.metrics)
    args += ["--metrics"] + [
        f"{m}=" + ",".join(metrics[i * len(FOLDS) : (i + 1) * len(FOLDS)])
        for i, m in enumerate(METHODS)
    ]
    if "truth" in input.keys():
        args += ["--truth-table", input.truth]
    if "replication" in input.keys():
        args += [
            "--replication",
            *(f"{m}={p}" for m, p in zip(METHODS, input.replication)),
        ]
    if "probes" in input.keys():
        args += [
            "--probes",
            input.probes,
            "--probe",
            *config["evaluate"]["compare_probes"],
        ]
    configs = " ".join(str(c) for c in workflow.configfiles) or "config/config.yaml"
    args += ["--header", f"'Made by the workflow (rule compare; config {configs})'"]
    return " ".join(args)


def explain_report(name, caption, labels):
    """An output of rule explain, shown in the report's explainability category."""
    return report(
        f"results/explain/contig/attributions.{name}",
        caption=f"../report/{caption}.rst",
        category="7. Explainability",
        subcategory="contig",
        labels=labels,
    )


def final_outputs():
    """Every target of a full run."""
    return [
        "results/genotypes/cohort.qc.tsv",
        "results/genotypes/pca_plot.png",
        "results/scores/prs.npz",
        "results/scores/burden.npz",
        *expand(
            "results/pretrain/{method}/{fold}/curves.png", method=METHODS, fold=FOLDS
        ),
        *expand("results/gwas/{method}/combined.manhattan.png", method=METHODS),
        *expand("results/gwas/{method}/loci.loci.tsv", method=METHODS),
        *expand("results/gwas/{method}/phenotypes.spectrum.png", method=METHODS),
        "results/evaluate/comparison.tsv",
        *(["results/explain/contig/attributions.features.tsv"] if EXPLAIN else []),
    ]
