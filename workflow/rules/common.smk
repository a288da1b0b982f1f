# Helpers shared by all rules: config validation, input checks, the contig command, and the input
# and params functions the rules name. Computations that need no Snakemake state live in
# contig.core.plan, where tests import them.
#
# What reruns a job. The workflow profile sets rerun-triggers input, params, code, software-env.
# For params, Snakemake records with each output the repr of every param value that does not come
# from a function taking input, output, threads or resources (those are "derived" and recorded
# nowhere), as a set without names (snakemake/persistence/__init__.py: _params); for code, the
# rule's shell text before formatting (_code). Threads and resources are not recorded. Hence:
# - each rule gets only the config values it uses, as one string of its command-line options
#   in a fixed order (command_options below), so reordering config keys changes nothing and
#   two settings that swap values still change the string;
# - settings that do not change results (pretrain.workers, pretrain.gpus, threads) reach the jobs
#   through threads and resources only;
# - functions taking input or output turn paths into arguments; a setting inside one would not
#   rerun the rule when it changes, so settings never go there.
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake_interface_executor_plugins.settings import ExecMode
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

SRC_DIR = Path(workflow.basedir).parent / "src"
sys.path.insert(0, str(SRC_DIR))

from contig.core import plan  # noqa: E402
from contig.core import resources as job_costs  # noqa: E402
from contig.core.errors import InputError  # noqa: E402
from contig.core.runlock import clear_stale_locks, record_owner  # noqa: E402
from contig.core.sheets import load_schema, validate_sheet  # noqa: E402

validate(config, "../schemas/config.schema.yaml")
PRUNE_ERRORS = plan.prune_window_errors(config)
if PRUNE_ERRORS:
    raise WorkflowError("\n".join(PRUNE_ERRORS))

# A snakemake killed with -9 leaves its locks and the next run would refuse to start: remove
# them when the run that took them is gone (see contig.core.runlock).
if workflow.exec_mode == ExecMode.DEFAULT and not workflow.dryrun:
    stale = clear_stale_locks(".snakemake")
    if stale is not None:
        logger.warning(
            f"Removed the locks of an earlier snakemake run (pid {stale}) that was killed "
            "before releasing them; its incomplete jobs are rerun."
        )


onstart:
    record_owner(".snakemake")


wildcard_constraints:
    method=plan.METHOD_PATTERN,
    analysis=plan.ANALYSIS_PATTERN,
    fold=plan.FOLD_PATTERN,


INPUTS = config["inputs"]
SIMULATED = INPUTS["simulate"]
SIMULATION = config["simulate"]["out"]


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


# ------------------------------------------------------------------------------ user inputs


def genotype_files(prefix):
    """The .bed/.bim/.fam files behind a prefix, or behind each per-chromosome prefix of a pattern."""
    from contig.genotypes.plinkio import expand_prefix_pattern

    prefixes = expand_prefix_pattern(prefix) if "{chrom}" in prefix else [prefix]
    return [f"{p}{ext}" for p in prefixes for ext in (".bed", ".bim", ".fam")]


def simulated_pgs_files():
    """The scoring files the simulator writes (their names follow from its settings)."""
    from contig.simulate import SimulationConfig

    folder = Path(SIMULATION) / "pgs"
    return [str(folder / f"{pgs_id}.txt.gz") for pgs_id in SimulationConfig().pgs_ids()]


SIMULATED_PGS = simulated_pgs_files()


def pgs_files():
    """The PGS Catalog scoring files: a list from config, or the *.txt[.gz] files in a folder."""
    pgs = INPUTS["pgs"]
    if SIMULATED:
        return SIMULATED_PGS
    if isinstance(pgs, list):
        return pgs
    files = sorted(
        str(p) for p in Path(pgs).glob("*.txt*") if p.name.endswith((".txt", ".txt.gz"))
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


def genotype_chromosomes():
    """The chromosomes of the input genotypes, in genome order (simulated: 1..n_chromosomes)."""
    if SIMULATED:
        return [str(c) for c in range(1, config["simulate"]["n_chromosomes"] + 1)]
    from contig.genotypes.plinkio import chromosome_sort_key, read_bim

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


# Imputed genotypes (optional): GWAS step 2 and the polygenic scores read them instead of the
# QC'd array; QC, PCs, SNPs, burden, step 1 and clumping stay on the array.
IMPUTED = INPUTS["imputed"]


def imputed_files():
    """The files behind inputs.imputed (and inputs.imputed_sample); [] when it is empty."""
    from contig.genotypes.sources import source_files

    if not IMPUTED:
        return []
    try:
        files = source_files(IMPUTED, INPUTS["imputed_sample"])
    except InputError as error:
        raise WorkflowError(f"config inputs.imputed: {error.one_line()}")
    for path in files:
        if not Path(path).exists():
            raise WorkflowError(f"config inputs.imputed: file not found: {path}")
    return files


IMPUTED_FILES = imputed_files()


def step2_genotype_inputs(wildcards):
    """What GWAS step 2 and the scores read: the imputed files, else the QC'd array fileset."""
    if IMPUTED:
        return IMPUTED_FILES
    return [f"results/genotypes/cohort{ext}" for ext in (".bed", ".bim", ".fam")]


def step2_source_arg(wildcards, input):
    """--bfile of the QC'd array, or the imputed source's --bgen [--sample] / --pfile."""
    from contig.genotypes.sources import source_arguments

    if not IMPUTED:
        return "--bfile results/genotypes/cohort"
    return " ".join(
        shlex.quote(arg) for arg in source_arguments(IMPUTED, INPUTS["imputed_sample"])
    )


# ------------------------------------------------------------------------------ the job plan

IMAGE_CACHE = f"results/images/cache_{config['images']['size']}"
METHODS = config["pretrain"]["methods"]
N_FOLDS = config["pretrain"]["n_folds"]
FOLDS = plan.fold_names(N_FOLDS)
GWAS_PARTS = plan.chromosome_groups(genotype_chromosomes(), config["gwas"]["scatter"])
LABELS = bool(INPUTS["labels"])
REPLICATE_EYES = config["evaluate"]["replicate_eyes"]
EXPLAIN = config["explain"]["enabled"] and "contig" in METHODS
# SLURM --gpus for the GPU rules; nothing when training on the CPU.
GPU_RESOURCES = (
    {"gpu": config["pretrain"]["gpus"]} if config["pretrain"]["gpus"] else {}
)
# Embedding and attributions run one process: one GPU whenever training has any.
INFERENCE_GPU_RESOURCES = {"gpu": 1} if config["pretrain"]["gpus"] else {}
# One GPU for each association job when gwas.device is cuda.
GWAS_GPU_RESOURCES = {"gpu": 1} if config["gwas"]["device"] == "cuda" else {}


def train_launcher(wildcards, resources):
    """How training starts `contig` (one process, or torchrun with one process per GPU, DDP,
    when the job holds more than one: pretrain.gpus). From resources, so that the GPU count,
    which does not change results, reruns nothing."""
    return plan.train_launcher(int(resources.get("gpu", 0)))


# ------------------------------------------------------------------------------ job resources


def input_job_size(rule_name, wildcards, input):
    """The sizes a rule's requests grow with, read from its input files (contig.core.resources);
    the simulator's from its settings; an association part's variants are its share of the
    chromosomes."""
    if rule_name == "simulate":
        sim = config["simulate"]
        return job_costs.JobSize(
            people=sim["n_samples"],
            variants=sim["n_snps"],
            images=2 * sim["n_samples"],
            image_size=sim["image_size"],
        )
    size = job_costs.size_of_inputs(
        list(input), config["images"]["size"], INPUTS["images"]
    )
    if rule_name == "gwas":
        share = len(GWAS_PARTS[wildcards.part]) / sum(map(len, GWAS_PARTS.values()))
        size = job_costs.scaled_variants(size, share)
    return size


def request_settings(rule_name):
    """The config values requests depend on: step 1's memory budget, epochs, and the GPUs of
    the job (all of pretrain.gpus for training, one for embedding and attributions)."""
    gpus = config["pretrain"]["gpus"]
    return job_costs.RequestSettings(
        store_mb=config["gwas"]["step1_mem_mb"],
        epochs=config["pretrain"]["epochs"],
        gpus=gpus if rule_name == "train" else min(gpus, 1),
    )


def job_resources(rule_name):
    """mem_mb and runtime of a rule's jobs from their input sizes, growing with the retry
    attempt, so a job SLURM killed for memory or time is resubmitted with more."""
    settings = request_settings(rule_name)

    def mem_mb(wildcards, input, attempt):
        size = input_job_size(rule_name, wildcards, input)
        return job_costs.request(rule_name, size, attempt, settings)[0]

    def runtime(wildcards, input, attempt):
        size = input_job_size(rule_name, wildcards, input)
        return job_costs.request(rule_name, size, attempt, settings)[1]

    return {"mem_mb": mem_mb, "runtime": runtime}


def final_outputs():
    """Every target of a full run."""
    return [
        "results/genotypes/cohort.qc.tsv",
        "results/genotypes/pca_plot.png",
        "results/genotypes/sample_filters.png",
        "results/scores/prs.npz",
        *(["results/genotypes/imputed_samples.tsv"] if IMPUTED else []),
        # burden only feeds training: no rare-variant scan unless a model reads it
        *(
            ["results/scores/burden.npz"]
            if "burden" in config["pretrain"]["modalities"]
            else []
        ),
        *expand(
            "results/pretrain/{method}/{fold}/curves.png", method=METHODS, fold=FOLDS
        ),
        *expand("results/gwas/{method}/combined.manhattan.png", method=METHODS),
        *expand("results/gwas/{method}/loci.tsv", method=METHODS),
        *expand("results/gwas/{method}/joint.manhattan.png", method=METHODS),
        *expand("results/gwas/{method}/assoc.summary.tsv", method=METHODS),
        *expand("results/gwas/{method}/phenotypes.spectrum.png", method=METHODS),
        "results/evaluate/comparison.tsv",
        *(["results/explain/contig/attributions.features.tsv"] if EXPLAIN else []),
        *expand("results/loci/{method}/loci.annotated.tsv", method=METHODS),
        *expand("results/loci/{method}/regional", method=METHODS),
        *(
            expand("results/loci/{method}/miami.png", method=METHODS)
            if REPLICATE_EYES
            else []
        ),
        "results/heritability/h2.tsv",
    ]


# ------------------------------------------------------------------------------ input functions


def fold_models(wildcards):
    """The models of every fold of the analysis' method (an embedding gathers them)."""
    method, _ = plan.split_analysis(wildcards.analysis)
    return expand(
        "results/pretrain/{method}/{fold}/model.pt", method=method, fold=FOLDS
    )


def loco_input(wildcards):
    """The LOCO predictions of gwas_step1 when config gwas.loco is on, else nothing."""
    if config["gwas"]["loco"]:
        return f"results/gwas/{wildcards.analysis}/step1.loco.tsv.gz"
    return []


def loci_annotation_inputs(wildcards):
    """What a method's annotated loci are built from: its loci and clumps, per-phenotype summary
    statistics, the genes, and the combined GWAS of each other eye when replicate_eyes is on.
    """
    gwas = f"results/gwas/{wildcards.method}"
    inputs = {
        "loci": f"{gwas}/loci.tsv",
        "clumps": f"{gwas}/loci.clumps.tsv",
        "sumstats": f"{gwas}/sumstats",
        "genes": INPUTS["genes"],
    }
    if REPLICATE_EYES:
        for eye in plan.other_eyes(config["embed"]["eye"]):
            inputs[f"eye_{eye}"] = f"{gwas}_{eye}/assoc.combined.parquet"
    return inputs


def comparison_inputs(wildcards):
    """What the comparison table is built from: loci and training metrics of every method, plus
    the truth check (simulated cohorts), replication across eyes and probes where enabled.
    """
    inputs = {
        "loci": expand("results/gwas/{method}/loci.tsv", method=METHODS),
        "loci_joint": expand("results/gwas/{method}/loci.joint.tsv", method=METHODS),
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


# ------------------------------------------------------------------------------ params functions
# Those taking input or output only turn paths into arguments (see the top of this file).


def command_options(options):
    """A params function giving the command-line options `options` ({flag: value}, see
    plan.cli_options). A function rather than the string: Snakemake reads braces in a string
    param as wildcards, and config values such as the genotypes' {chrom} pattern have braces.
    """
    text = plan.cli_options(options)

    def options_arg(wildcards):
        return text

    return options_arg


def clump_options(p_column):
    """The options of `contig clump` for loci of one test: min p x k (LOG10P) or the joint test
    (LOG10P_JOINT) of the combined table."""
    return command_options(
        {
            "--p-column": p_column,
            "--p1": config["gwas"]["threshold"],
            "--p2": config["clump"]["p2"],
            "--r2": config["clump"]["r2"],
            "--kb": config["clump"]["kb"],
        }
    )


def split_arg(wildcards):
    """--n-folds K --fold k for cross-fitting folds, --split TRAIN VAL TEST for the holdout."""
    return plan.split_option(wildcards.fold, N_FOLDS, config["pretrain"]["holdout"])


def embed_options(wildcards):
    """The eye of an analysis: the configured eye (everyone embedded) for a method, one eye of the
    people with both eyes for <method>_<eye>; and how fold models' spaces are aligned.
    """
    _, eye = plan.split_analysis(wildcards.analysis)
    align = {"--align": config["embed"]["align"]}
    if eye is None:
        return plan.cli_options({"--eye": config["embed"]["eye"], **align})
    return plan.cli_options({"--eye": eye, "--both-eyes-only": True, **align})


def gwas_part_chromosomes(wildcards):
    return " ".join(GWAS_PARTS[wildcards.part])


def checkpoint_args(wildcards, input):
    return plan.repeated_option("--checkpoint", input.models)


def modality_args(wildcards, input):
    return plan.repeated_option(
        "--modality", (f"{Path(p).stem}={p}" for p in input.modalities)
    )


def embedding_args(wildcards, input):
    return plan.repeated_option(
        "--embeddings", (f"{Path(p).stem}={p}" for p in input.embeddings)
    )


def optional_input_arg(flag, name):
    """A params function: `flag <input.name>` when the rule has that input, else nothing."""

    def arg(wildcards, input):
        return f"{flag} {input[name]}" if input.get(name) else ""

    return arg


def method_paths_arg(name):
    """A params function: METHOD=PATH for each path of input.name (one per method of METHODS)."""

    def arg(wildcards, input):
        return " ".join(plan.named_paths(METHODS, input[name]))

    return arg


def other_eye_args(wildcards, input):
    """--other-eye EYE=PATH for each other eye's combined GWAS among the inputs."""
    return plan.repeated_option(
        "--other-eye",
        (f"{key[4:]}={path}" for key, path in input.items() if key.startswith("eye_")),
    )


def comparison_args(wildcards, input):
    """The `contig compare` inputs of comparison_inputs, and a header naming the config."""
    inputs = plan.comparison_arguments(
        METHODS,
        FOLDS,
        input.loci,
        input.metrics,
        truth=input.get("truth"),
        replication=input.get("replication", []),
        probes=input.get("probes"),
        loci_joint=input.loci_joint,
    )
    configs = " ".join(str(c) for c in workflow.configfiles) or "config/config.yaml"
    header = plan.cli_options(
        {"--header": f"Made by the workflow (rule compare; config {configs})"}
    )
    return f"{inputs} {header}"


def explain_report(name, caption, labels):
    """An output of rule explain, shown in the report's explainability category."""
    return report(
        f"results/explain/contig/attributions.{name}",
        caption=f"../report/{caption}.rst",
        category="7. Explainability",
        subcategory="contig",
        labels=labels,
    )
