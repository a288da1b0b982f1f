"""Per-rule conda envs, checked statically (conda channels are unreachable here):
every rule has one, it provides every third-party package the rule's command imports
(walking the imports of the contig modules it reaches), and its pins equal requirements.txt."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from contig.cli import COMMANDS
from helpers.workflow import ROOT

# import name -> distribution name (conda-forge / PyPI)
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn",
                "matplotlib": "matplotlib-base"}
STDLIB = set(sys.stdlib_module_names)
# Imports a command makes only on a path the rules never take, with the reason.
OPTIONAL = {
    "torch": "contig gwas imports torch only for --device cuda/cpu-torch; the rules use NumPy",
}


def rules_with_envs() -> list[tuple[str, str, str]]:
    """(rule, env file, shell text) for every rule in workflow/rules/*.smk."""
    found = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"^rule ", text, flags=re.MULTILINE)[1:]:
            name = block.split(":", 1)[0].strip()
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            shell = block.split("shell:", 1)[1] if "shell:" in block else ""
            found.append((name, env.group(1) if env else "", shell))
    return found


def module_file(module: str) -> Path | None:
    path = ROOT / "src" / Path(*module.split("."))
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return None


def third_party_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Top-level names of non-stdlib, non-contig imports reachable from ``module``."""
    seen = set() if seen is None else seen
    if module in seen or (path := module_file(module)) is None:
        return set()
    seen.add(module)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "contig":
                found |= third_party_imports(name, seen)
            elif name.split(".")[0] not in STDLIB:
                found.add(name.split(".")[0])
    return found


def env_packages(env_file: Path) -> dict[str, str]:
    """Package -> pinned version for conda and pip dependencies of an env file."""
    spec = yaml.safe_load(env_file.read_text())
    pins: dict[str, str] = {}
    for dep in spec["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, _, version = re.split(r"(==|=)", item, maxsplit=1) if "=" in item else (item, "", "")
            pins[name.strip().lower()] = version.strip()
    return pins


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


RULES = rules_with_envs()


def test_rules_found():
    assert {"simulate", "qc", "pca", "prs", "burden", "images", "train", "embed", "gwas"} <= {
        r for r, _, _ in RULES}


@pytest.mark.parametrize("rule,env,shell", RULES, ids=[r for r, _, _ in RULES])
def test_rule_env_provides_its_imports(rule, env, shell):
    assert env, f"rule {rule} has no conda: directive"
    env_file = (ROOT / "workflow" / "rules" / env).resolve()
    assert env_file.exists(), env_file
    pins = env_packages(env_file)
    assert "python" in pins
    command = re.search(r"python -m contig ([\w-]+)", shell)
    if command is None:  # a rule without a contig command needs no imports
        return
    module = f"contig.cli.{COMMANDS[command.group(1)][0]}"
    needed = {DISTRIBUTION.get(name, name).lower() for name in third_party_imports(module)}
    assert needed, module
    if "torch" not in pins:
        needed -= set(OPTIONAL)
    missing = needed - set(pins)
    assert not missing, f"{env} lacks {sorted(missing)} needed by `contig {command.group(1)}`"


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_agree_with_requirements(env_file):
    spec = yaml.safe_load(env_file.read_text())
    assert spec["channels"] == ["conda-forge", "bioconda", "nodefaults"]
    requirements = requirement_pins()
    for name, version in env_packages(env_file).items():
        assert version, f"{env_file.name}: {name} is not pinned"
        if name == "python":
            assert version == "3.11"
            continue
        if name == "pip":  # the installer itself; requirements.txt pins what it installs
            continue
        lookup = "matplotlib" if name == "matplotlib-base" else name
        assert lookup in requirements, f"{env_file.name}: {name} is not in requirements.txt"
        assert requirements[lookup] == version, f"{env_file.name}: {name}={version} vs {requirements[lookup]}"
