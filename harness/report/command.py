"""`python -m harness.report`: leaderboard and ablation tables (and figures) from an MLflow store.

    python -m harness.report [--tracking-uri URI] [--out results/] [--plots [--bench]] [--html]
        [--format md|latex|csv|term] [--metric best/test_acc] [--digits 3]
        [--group-by model,task ...] [--baseline model=s4_legs] [--pool KEY ...]
        [--experiment ssm-bench ...] [--sweep ID ...] [--tag k=v ...]
        [--since YYYY-MM-DD] [--status FINISHED ...] [--seeds N] [--published matched|all|none]

Writes `<out>/leaderboard.{md,tex,csv}`, one `<out>/ablation_<keys>.{md,tex,csv}` per `--group-by`,
`<out>/excluded_runs.csv`, with `--plots` the figures under `<out>/figures/` (the benchmark
figures only with `--bench`), and with `--html` the figures and the page `<out>/site/index.html`
(`harness.report.html`); prints the tables in the `--format` chosen. Each task is scored by its
objective's metric unless `--metric` names one. User errors exit with status 2 and one line on
stderr.
"""

import argparse
import logging
from datetime import datetime
from pathlib import Path

from common import OBJECTIVES, UserError
from harness.cli import exits_on_user_error, make_folder, parse_key_values, program
from harness.layout import PROJECT_ROOT
from harness.report.format import DEFAULT_DIGITS, RENDERERS, to_csv, write_table
from harness.report.load import DEFAULT_EXPERIMENT, RunFilter, dedup, load_runs, sweep_hashes
from harness.report.published import DEFAULT_PUBLISHED_CSV, load_published
from harness.report.tables import (
    ablation_table,
    excluded_table,
    leaderboard_table,
    parse_baseline,
)
from harness.run.tracking import resolve_uri

log = logging.getLogger("harness.report")
STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {text!r}: write a date, e.g. 2026-11-23"
        ) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--digits {text!r}: give a positive integer, e.g. 3")
    return int(text)


def _keys(specs: list[str]) -> list[str]:
    """Comma-separated, repeatable key lists -> one list of keys."""
    return [k.strip() for spec in specs for k in spec.split(",") if k.strip()]


def parser() -> argparse.ArgumentParser:
    """The command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(prog=program("report"), description=__doc__.split("\n")[0])
    p.add_argument(
        "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or results/mlflow.db)"
    )
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results", help="output folder")
    p.add_argument("--plots", action="store_true", help="also write figures under <out>/figures")
    p.add_argument(
        "--bench", action="store_true", help="with --plots: also the figures of --bench-dir"
    )
    p.add_argument(
        "--html", action="store_true", help="also write the figures and <out>/site/index.html"
    )
    p.add_argument("--format", choices=sorted(RENDERERS), default="term", help="printed format")
    p.add_argument(
        "--metric",
        help="MLflow metric for every task (default: per task by its objective, "
        f"{', '.join(f'{o.name} {o.test_metric}' for o in OBJECTIVES.values())})",
    )
    p.add_argument(
        "--digits",
        type=_positive,
        default=DEFAULT_DIGITS,
        help="significant digits of the means in the printed tables",
    )
    p.add_argument(
        "--pool",
        action="append",
        default=[],
        help="comma-separated config keys whose differing values a cell may pool (e.g. model)",
    )
    p.add_argument(
        "--group-by",
        action="append",
        default=[],
        help="comma-separated tags or params for an ablation table (repeatable)",
    )
    p.add_argument(
        "--baseline",
        help="key=value[,key=value]: compare each --group-by table holding these keys with it",
    )
    p.add_argument("--experiment", action="append", help=f"default {DEFAULT_EXPERIMENT}")
    p.add_argument(
        "--sweep", action="append", default=[], help="sweep id (tag sweep, or its manifest)"
    )
    p.add_argument(
        "--sweeps-dir",
        type=Path,
        default=PROJECT_ROOT / "results" / "sweeps",
        help="sweep manifests (<dir>/<id>/sweep.json) that --sweep ids resolve through",
    )
    p.add_argument("--tag", action="append", default=[], help="key=value tag filter")
    p.add_argument("--since", type=_date, help="only runs started on or after this date")
    p.add_argument("--status", action="append", choices=STATUSES, default=[], help="run status")
    p.add_argument("--seeds", type=int, default=1, help="mark cells with fewer seeds than this")
    p.add_argument(
        "--published",
        choices=("matched", "all", "none"),
        default="matched",
        help="published rows: of the models in the table, all, or none",
    )
    p.add_argument("--published-file", type=Path, default=DEFAULT_PUBLISHED_CSV)
    p.add_argument(
        "--runs-dir", type=Path, help="run folders with checkpoints (default: the runs' paths)"
    )
    p.add_argument(
        "--bench-dir",
        type=Path,
        default=PROJECT_ROOT / "results" / "bench",
        help="benchmark CSVs of harness.bench (for --plots)",
    )
    p.add_argument(
        "--kernel-len",
        type=int,
        help="kernel length L in the figures (default: each run's own sequence length)",
    )
    p.add_argument(
        "--basis-state",
        type=int,
        default=16,
        help="state size N of the basis figure (larger N: S4D-Inv/LegS oscillate too fast to draw)",
    )
    return p


def run(args: argparse.Namespace) -> list[Path]:
    """Load, dedup, tabulate, write and print; returns the files written."""
    try:
        return _run(args)
    except OSError as error:  # a write under --out failed (read-only, full disk)
        if error.filename is None or args.out not in Path(error.filename).parents:
            raise
        raise UserError(
            f"cannot write {error.filename} ({error.strerror}); pass --out a writable folder"
        ) from None


def _run(args: argparse.Namespace) -> list[Path]:
    if args.bench and not args.plots:
        raise UserError("--bench selects benchmark figures; add --plots to draw figures")
    if args.plots and (args.basis_state < 2 or args.basis_state % 2):
        raise UserError(
            f"--basis-state {args.basis_state}: the state size must be a positive even number "
            "(conjugate pairs); give e.g. --basis-state 16"
        )
    if args.kernel_len is not None and args.kernel_len < 1:
        raise UserError(
            f"--kernel-len {args.kernel_len}: a kernel needs at least one step; give a positive "
            "length or leave it out (each run's sequence length)"
        )
    pool = _keys(args.pool)
    baseline = parse_baseline(args.baseline)
    if baseline and not any(set(baseline) <= set(_keys([spec])) for spec in args.group_by):
        raise UserError(
            f"--baseline keys {sorted(baseline)} are not all in any --group-by {args.group_by}"
        )
    uri = resolve_uri(args.tracking_uri)  # --tracking-uri, else MLFLOW_TRACKING_URI, else default
    filt = RunFilter(
        experiments=tuple(args.experiment or [DEFAULT_EXPERIMENT]),
        sweeps=tuple(args.sweep),
        sweep_points=sweep_hashes(args.sweeps_dir, tuple(args.sweep)),
        tags=parse_key_values(args.tag, "--tag", "init=legs", typed=False),
        since=args.since,
        statuses=tuple(args.status),
    )
    result = dedup(load_runs(uri, filt))
    published = None if args.published == "none" else load_published(args.published_file)
    kept = result.kept
    tables = [leaderboard_table(kept, args.metric, published, args.seeds, args.published, pool)]
    for spec in args.group_by:
        keys = _keys([spec])
        base = baseline if baseline and set(baseline) <= set(keys) else {}
        tables.append(ablation_table(kept, args.metric, keys, base, args.seeds, pool))
    excluded = excluded_table(kept, result.dropped, args.metric)
    for table in [*tables, excluded]:
        table.digits = args.digits
    written = []
    make_folder(args.out, "--out", "pass --out a writable folder")  # only now: nothing failed
    for table in tables:
        written += write_table(table, args.out, excluded)
    excluded_csv = args.out / "excluded_runs.csv"
    excluded_csv.write_text(to_csv(excluded))
    written.append(excluded_csv)
    render = RENDERERS[args.format]
    print("\n".join(render(t) for t in [*tables, excluded] if t.rows or t is tables[0]))
    if args.plots or args.html:
        from harness.report.figures import (
            write_figures,  # torch and the models load only for figures
        )

        figures = write_figures(uri, kept, args, published, pool)
        written += figures
    if args.html:
        from harness.report.html import write_site

        written.append(write_site(args.out / "site", [*tables, excluded], figures, kept))
    log.info("wrote %s", ", ".join(str(p) for p in written))
    return written


@exits_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0, or 2 with `error: <message>` for a user error."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("harness").setLevel(logging.INFO)
    args = parser().parse_args(argv)
    run(args)
    return 0
