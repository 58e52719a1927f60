"""`python -m harness.study <name> [--quick] [--out DIR]`: run a study's sweep, write its folder.

    python -m harness.study hope_memory          # the full study -> results/studies/hope_memory/
    python -m harness.study httyh_delay --quick  # seconds-long smoke version in a temp folder

The sweep is `python -m harness.run -m experiment=study/<name> hydra/launcher=local` (each part
of the study in its own sweep folder `<sweeps_dir>/study_<name>[-<part>]`), so a rerun skips the
finished points and resumes unfinished ones; its runs are ordinary MLflow runs. The study's runs
are the points its sweep manifests list (`sweep.json`), read back with `harness.report.load`;
`harness.study.write` writes `<out>/results/studies/<name>/` (`--out`), or the project's
`results/studies/<name>/` (the project's store and run folders) without `--out`. `--quick` always
writes under `--out` or a new temporary folder, never into the project's results. A user error
(unknown study) prints `error: ...` and exits 2; a sweep with a failed point still writes the
study (the failure is listed under the table) and exits 1.
"""

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from common import UserError
from harness.cli import exits_on_user_error, program
from harness.layout import MANIFEST, PROJECT_ROOT
from harness.report.load import RunFilter, dedup, load_runs, sweep_hashes
from harness.run.tracking import resolve_uri
from harness.study.specs import STUDIES, Study
from harness.study.write import QUICK_NOTE, Context, write_study


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program("study"), description=__doc__.split("\n")[0])
    p.add_argument("name", help=f"the study: {', '.join(STUDIES)}")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke version (not a result)")
    p.add_argument(
        "--out", type=Path, help="root of the store, run folders and study files (default: project)"
    )
    return p


def study_named(name: str) -> Study:
    if name not in STUDIES:
        raise UserError(f"unknown study {name!r}; valid studies are: {', '.join(STUDIES)}")
    return STUDIES[name]


def location_overrides(root: Path | None) -> list[str]:
    """Overrides that put the store and run folders under `root` (none: the project's)."""
    if root is None:
        return []
    return [f"paths.root={root}", f"tracking.uri=sqlite:///{root / 'results' / 'mlflow.db'}"]


def sweep_dir(study: Study, part_label: str, root: Path | None) -> Path:
    results = (root or PROJECT_ROOT) / "results"
    suffix = "" if part_label == "main" else f"-{part_label}"
    return results / "sweeps" / f"study_{study.name}{suffix}"


def sweep_command(study: Study, part, root: Path | None, quick: bool) -> list[str]:
    """The `python -m harness.run -m ...` command of one part of the study."""
    return [
        sys.executable,
        "-m",
        "harness.run",
        "-m",
        f"experiment={study.experiment}",
        "hydra/launcher=local",
        f"hydra.sweep.dir={sweep_dir(study, part.label, root)}",
        *(part.quick + study.quick if quick else part.overrides),
        *location_overrides(root),
    ]


def run_sweeps(study: Study, root: Path | None, quick: bool) -> bool:
    """Run every part; True when all points finished (Hydra exits non-zero otherwise)."""
    ok = True
    for part in study.parts:
        command = sweep_command(study, part, root, quick)
        print("+ " + shlex.join(command[1:]), flush=True)
        ok &= subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode == 0
    return ok


def study_runs(study: Study, root: Path | None, uri: str):
    """The deduplicated runs of the points the study's sweep manifests list."""
    dirs = [sweep_dir(study, p.label, root) for p in study.parts]
    hashes = frozenset().union(*(sweep_hashes(d.parent, (d.name,)) for d in dirs))
    missing = [str(d / MANIFEST) for d in dirs if not (d / MANIFEST).is_file()]
    if missing:
        raise UserError(f"no sweep manifest {missing[0]}; the sweep did not start (see its output)")
    runs = load_runs(uri, RunFilter())
    result = dedup(runs[runs["config_hash"].isin(hashes)].reset_index(drop=True))
    return result, len(hashes)


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def commit_text() -> str:
    """`abc1234` or `abc1234 (with uncommitted changes)` to the code and configs (the results
    folder and the README, which studies write, do not count)."""
    outputs = [":!results", ":!README.md"]
    dirty = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", ".", *outputs], cwd=PROJECT_ROOT
    )
    dirty = dirty.returncode != 0
    return _git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" * dirty)


def machine_text() -> str:
    """CPU model, cores, OS and torch version (and the GPU when one is visible)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    text = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    text += f", torch {metadata.version('torch')}"
    import torch

    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def run(args: argparse.Namespace) -> int:
    study = study_named(args.name)
    root = args.out
    if args.quick and root is None:
        root = Path(tempfile.mkdtemp(prefix=f"ssm-bench-study-{study.name}-"))
    if root is not None:
        root = root.resolve()
    uri = resolve_uri(None) if root is None else location_overrides(root)[1].split("=", 1)[1]
    start = time.monotonic()
    ok = run_sweeps(study, root, args.quick)
    elapsed = time.monotonic() - start
    result, n_points = study_runs(study, root, uri)
    kept = result.kept
    started = kept["start_time"] >= pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=elapsed)
    out = (root or PROJECT_ROOT) / "results" / "studies" / study.name
    command = f"python -m harness.study {study.name}" + (" --quick" if args.quick else "")
    commits = (
        sorted(set(kept["tags.git_commit"].dropna().str[:7])) if "tags.git_commit" in kept else []
    )
    ctx = Context(
        command=command,
        commit=commit_text(),
        run_commits=commits or ["unknown"],
        machine=machine_text(),
        invocation_s=elapsed,
        trained=int(started.sum()),
        skipped=n_points - int(started.sum()),
        paper_config=f"configs/experiment/study/{study.name}_paper.yaml",
        quick=args.quick,
    )
    seeds = 1 if args.quick else study.seeds
    project_readme = PROJECT_ROOT / "README.md" if root is None else None
    paths = write_study(
        kept, result.dropped, study, out, seeds, ctx, root or PROJECT_ROOT, project_readme
    )
    names = [p.name if p.parent == out else f"and {p}" for p in paths]  # the project README
    print(f"wrote {out}/ ({', '.join(names)})")
    if args.quick:
        print(f"note: {QUICK_NOTE.strip('*')}")
    return 0 if ok else 1


@exits_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0, 1 when a sweep point failed, 2 with `error: ...` for a user error."""
    args = parser().parse_args(argv)
    study_named(args.name)  # answered before anything runs
    return run(args)
