# Helpers shared by all rules: config validation, input checks, paths and the contig command.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

SRC_DIR = Path(workflow.basedir).parent / "src"
sys.path.insert(0, str(SRC_DIR))

from contig.errors import InputError  # noqa: E402
from contig.sheets import load_schema, validate_sheet  # noqa: E402

validate(config, "../schemas/config.schema.yaml")

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
    ]
