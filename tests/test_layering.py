"""The layering contract: docs/DESIGN.md's package table is pyproject.toml's import-linter
contracts, the tree keeps them, and a forbidden import makes `lint-imports` fail."""

import itertools
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.layout import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("common", "models", "tasks", "harness")


def contracts() -> list[dict]:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_packages"] == list(PACKAGES)
    return config["contracts"]


def contract_pairs() -> set[tuple[str, str]]:
    """(importer, forbidden) for every forbidden contract."""
    pairs = set()
    for contract in contracts():
        assert contract["type"] == "forbidden", contract["name"]
        pairs |= set(itertools.product(contract["source_modules"], contract["forbidden_modules"]))
    return pairs


def design_pairs() -> set[tuple[str, str]]:
    """(importer, forbidden) from the `must not import` column of DESIGN.md's package table."""
    design = (PROJECT_ROOT / "docs" / "DESIGN.md").read_text()
    table = design.split("## Packages\n\n", 1)[1].split("\n\n", 1)[0]
    header, _, *rows = table.splitlines()
    assert header.split("|")[4].strip() == "must not import"
    pairs = set()
    for row in rows:
        folder, _, _, forbidden = (cell.strip() for cell in row.strip("|").split(" | "))
        if forbidden == "-":
            continue
        sources = [
            path.removesuffix(".py").strip("/").replace("/", ".")
            for path in re.findall(r"`([^`]+)`", folder)
        ]
        pairs |= set(itertools.product(sources, re.findall(r"`([^`]+)`", forbidden)))
    return pairs


def test_design_table_is_the_import_linter_contract():
    assert design_pairs() == contract_pairs()
    assert ("harness.bench", "harness.report") in contract_pairs()  # the arrow that ran back up
    assert {("models", "harness"), ("tasks", "models"), ("harness.run", "harness.study")} <= (
        contract_pairs()
    )


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract():
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("models/leak.py", "import harness.run.config", "models imports neither harness nor tasks"),
        ("harness/bench/leak.py", "from harness.report import plots", "harness.bench imports no"),
        ("harness/study/leak.py", "from harness.report import command", "study uses report's"),
        ("harness/layout.py", "import torch", "the light modules import neither torch nor MLflow"),
    ],
)
def test_a_forbidden_import_makes_lint_imports_fail(tmp_path, module, line, broken):
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=_caches)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module  # a new module, or one more import in an existing one
    target.write_text((target.read_text() if target.exists() else "") + f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert re.search(re.escape(broken) + r".* BROKEN", result.stdout), result.stdout


def _caches(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__"]
