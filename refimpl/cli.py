"""Command-line interface of refimpl: the validation report and the oracle.

``python -m refimpl validate [--quick | --profile P] [--out DIR] [--only NAME …] [--workers N | --scheduler ADDR] [--resume]``
    runs every experiment registered in ``validation.EXPERIMENTS`` (the ``validation/`` folder beside the package) as
    one sweep of tasks (refimpl.sweep, docs/sweeps.md) and writes ``DIR/index.md`` with one PASS/FAIL line per claim.
    Exit 0 every claim passed, 1 some claim failed.
``python -m refimpl cases export DIR [--quick] [--workers N | --scheduler ADDR]``
    writes the battery of oracle cases (JSON metadata + ``.npz`` arrays, ``docs/case-format.md``) to DIR.
``python -m refimpl check CASE_DIR THEIRS.npz [--json]``
    compares a foreign implementation's arrays with a case. Exit 0 pass, 1 mismatch.

Exit code 2 always means bad input (usage errors, missing or malformed files). The CLI composes; nothing imports it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from pathlib import Path

import refimpl

REPO_ROOT = Path(refimpl.__file__).resolve().parents[1]


def _import_validation():
    if not (REPO_ROOT / "validation" / "__init__.py").is_file():
        raise FileNotFoundError(f"no validation/ folder beside the package at {REPO_ROOT} "
                                "(run from a source checkout installed with `pip install -e .`)")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("validation")


def validate(out: Path, quick: bool = False, only: list[str] | None = None, *, profile: str | None = None,
             workers: int | None = None, scheduler: str | None = None, resume: bool = False,
             results: Path | None = None, executor=None, stream=None) -> int:
    """Run the registered experiments as one sweep and write ``out/index.md`` (validation/report.py;
    docs/sweeps.md); return the exit code. ``profile`` ("quick" | "full" | "large"; ``quick=True`` means "quick");
    ``workers`` / ``scheduler`` choose the executor (or pass an open ``executor``); ``results`` (default
    ``out/sweep-results``) keeps each finished task, ``resume`` reuses them."""
    from refimpl.sweep import open_executor

    validation = _import_validation()
    from validation.report import write_report

    names = [n for n in validation.EXPERIMENTS if not only or n in only]
    unknown = sorted(set(only or []) - set(validation.EXPERIMENTS))
    if unknown:
        print(f"error: unknown experiment(s) {unknown}; known: {validation.EXPERIMENTS}", file=sys.stderr)
        return 2
    profile = profile or ("quick" if quick else "full")
    with (contextlib.nullcontext(executor) if executor is not None else open_executor(workers, scheduler)) as ex:
        return write_report(out, names, profile, ex, results=results, resume=resume, sys_path=[str(REPO_ROOT)],
                            stream=stream)


def validate_plan(profile: str, only: list[str] | None = None) -> int:
    """Print the task count per experiment and the estimated core-hours of a profile; run nothing."""
    validation = _import_validation()
    from validation.experiment import experiment_tasks

    total, cost = 0, 0.0
    for name in validation.EXPERIMENTS:
        if only and name not in only:
            continue
        ts = experiment_tasks(name, profile)
        known = sum(t.cost for t in ts if t.cost is not None)
        total += len(ts)
        cost += known
        print(f"{name}: {len(ts)} tasks, estimated {known / 3600:.3f} core-hours "
              f"({sum(t.cost is None for t in ts)} without an estimate)")
    print(f"{total} tasks ({profile} profile); estimated {cost / 3600:.2f} core-hours")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _executor_options(parser) -> None:
    """--workers / --scheduler (docs/sweeps.md): where the sweep's tasks run (default: serially, in this process)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--workers", type=_positive_int, metavar="N", help="run the tasks on N local processes")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the tasks on the dask.distributed cluster at ADDRESS, e.g. tcp://host:8786 (default: "
                            "$REFIMPL_SCHEDULER; needs pip install 'refimpl[distributed]')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m refimpl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="run the validation experiments and write the report")
    v.add_argument("--quick", action="store_true", help="small sizes, for CI")
    v.add_argument("--out", type=Path, default=REPO_ROOT / "validation" / "report", help="report folder")
    v.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    v.add_argument("--profile", choices=("quick", "full", "large"), default=None,
                   help="sizes: quick (= --quick), full (default), large (N to 2^16, more seeds and schemes: a cluster's "
                        "worth; prints its task count and estimated core-hours first)")
    v.add_argument("--dry-run", action="store_true", help="print the task count and estimated core-hours, run nothing")
    v.add_argument("--resume", action="store_true", help="reuse the finished tasks in the results folder")
    v.add_argument("--results", type=Path, default=None, metavar="DIR",
                   help="folder of per-task results (default: OUT/sweep-results)")
    _executor_options(v)
    # oracle (docs/case-format.md): refimpl.oracle.commands
    cases = sub.add_parser("cases", help="oracle cases as data").add_subparsers(dest="cases_command", required=True)
    ex = cases.add_parser("export", help="write the battery of oracle cases (JSON metadata + .npz arrays) to DIR")
    ex.add_argument("dir", type=Path, metavar="DIR")
    ex.add_argument("--quick", action="store_true", help="a small subset (for tests)")
    _executor_options(ex)
    ck = sub.add_parser("check", help="compare a foreign implementation's arrays with an oracle case "
                                      "(exit 0 pass, 1 mismatch, 2 bad input)")
    ck.add_argument("case_dir", type=Path, metavar="CASE_DIR")
    ck.add_argument("theirs", type=Path, metavar="THEIRS.npz")
    ck.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits with 2 on usage errors and 0 on --help
        return int(e.code or 0)
    try:
        if args.command == "validate":
            if args.quick and args.profile not in (None, "quick"):
                print("error: --quick and --profile disagree", file=sys.stderr)
                return 2
            profile = args.profile or ("quick" if args.quick else "full")
            if args.dry_run:
                return validate_plan(profile, args.only)
            return validate(args.out, only=args.only, profile=profile, workers=args.workers,
                            scheduler=args.scheduler, resume=args.resume, results=args.results)
        if args.command == "cases":
            from refimpl.oracle.commands import export_command
            from refimpl.sweep import open_executor
            with open_executor(args.workers, args.scheduler) as executor:
                return export_command(args.dir, args.quick, executor=executor)
        if args.command == "check":
            from refimpl.oracle.commands import check_command
            return check_command(args.case_dir, args.theirs, args.json)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # --scheduler without dask.distributed: say what to install
        from refimpl.sweep import DASK_MISSING
        if str(e) != DASK_MISSING:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2
