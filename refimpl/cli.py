"""Command-line interface of refimpl: the validation report and the oracle.

``python -m refimpl validate [--quick | --profile P] [--out DIR] [--only NAME …] [--workers N | --scheduler ADDR] [--resume]``
    runs every experiment registered in ``validation.EXPERIMENTS`` (the ``validation/`` folder beside the package) as
    one sweep of tasks (refimpl.sweep, docs/sweeps.md) and writes ``DIR/index.md`` with one PASS/FAIL line per claim.
    Exit 0 every claim passed, 1 some claim failed.
``python -m refimpl cases export DIR [--quick] [--force] [--workers N | --scheduler ADDR]``
    writes the battery of oracle cases (JSON metadata + ``.npz`` arrays, ``docs/case-format.md``) to DIR, atomically.
``python -m refimpl check CASE_DIR THEIRS.npz [--json] [--rtol R] [--atol A] [--precision float32] [--verify]``
    compares a foreign implementation's arrays with a case. Exit 0 pass, 1 mismatch.
``python -m refimpl audit LIBRARY [--method M …] [--adjoint backprop|backsolve] [--layout L] [--out DIR] …``
    audits a solver's gradient over a refinement family (refimpl.audit, docs/theory/audit.md) and writes
    ``DIR/audit.md``. Exit 0 every gradient recognised and consistent, 1 some gradient inconsistent or unrecognised.

Exit codes of every command: 2 bad input (usage errors, missing or malformed files, a case failing its integrity
check); 3 an internal error of refimpl — the traceback is saved to a file whose path is printed, and it is never 1,
which means "your implementation mismatches"; 130 interrupted (SIGINT or SIGTERM). The CLI composes; nothing
imports it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import signal
import sys
import tempfile
import textwrap
import traceback
from contextlib import contextmanager
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


CHECK_DESCRIPTION = """\
Compare a foreign implementation's arrays with one oracle case.

CASE_DIR   one case folder of an export: it holds case.json (the problem, what each array is, the tolerances,
           integrity hashes) and arrays.npz (inputs and references), e.g. cases/tanh-d2__rk4__stage__N16. Not the
           export root (cases/): its index.json lists the case names. docs/case-format.md (the README.md of every
           export) defines the format.
THEIRS.npz your arrays, saved with numpy.savez(path, NAME=array, ...). Each NAME must be a reference quantity of the
           case, spelled exactly (lower case), e.g. trajectory, loss, discrete_gradient, grad_x0,
           normalised_gradient, continuous_gradient, corrected_gradient (ODE cases), energy, particle_trajectory,
           ... (Wasserstein cases); case.json lists those of the case under "arrays" with role "reference". Give any
           subset; the ones you omit are reported as not provided. Each array must have the reference's shape and a
           real dtype (float64 recommended; float32/float16 and integers are read as they are and compared in float64;
           bool, complex and object arrays are refused); NaN or inf in your array is a mismatch, not an error.

Tolerances: an entry passes when |theirs - ref| <= atol + rtol*|ref|. By default each quantity uses the case's
rtol/atol (case.json "tolerances": float64 rounding). --precision float32 derives them from float32's unit roundoff,
the case's rounding depth and its measured condition (never tighter than the case's; the formula is printed).
--rtol/--atol replace them for every quantity, as given (the report marks tolerances looser than the case's).
The tolerances used are printed on every row, with the worst entry in full precision.
"""


def _exit_codes_epilog() -> str:
    from refimpl.oracle.commands import EXIT_CODES

    return "exit codes:\n" + "\n".join(textwrap.fill(text, 110, initial_indent=f"  {code:<4} ",
                                                      subsequent_indent=" " * 7) for code, text in EXIT_CODES.items())


def _tolerance_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


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
    ex = cases.add_parser("export", help="write the battery of oracle cases (JSON metadata + .npz arrays) to DIR",
                          description="Write the battery of oracle cases to DIR, atomically: it is built in a "
                                      "temporary sibling folder and swapped into place, index.json last; an "
                                      "interrupted export (Ctrl-C, SIGTERM, a kill) leaves DIR as it was.",
                          epilog="exit codes: 0 written; 2 DIR refused (empty path, a file, not empty without "
                                 "--force) or not writable; 3 internal error; 130 interrupted (DIR unchanged)",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("dir", metavar="DIR", help="the folder to write (created; refused if not empty, see --force)")
    ex.add_argument("--quick", action="store_true", help="a small subset (for tests)")
    ex.add_argument("--force", action="store_true", help="replace a non-empty DIR whole (its old content is removed)")
    _executor_options(ex)
    ck = sub.add_parser("check", help="compare a foreign implementation's arrays with an oracle case "
                                      "(exit 0 pass, 1 mismatch, 2 bad input, 3 internal error)",
                        description=CHECK_DESCRIPTION, epilog=_exit_codes_epilog(),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ck.add_argument("case_dir", type=Path, metavar="CASE_DIR", help="one case folder (holding case.json, arrays.npz)")
    ck.add_argument("theirs", type=Path, metavar="THEIRS.npz", help="your arrays, named as the case's references")
    ck.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    ck.add_argument("--rtol", type=_tolerance_arg, metavar="R", help="relative tolerance for every quantity "
                    "(0 <= R < 1; replaces the case's, as given)")
    ck.add_argument("--atol", type=_tolerance_arg, metavar="A", help="absolute tolerance for every quantity "
                    "(A >= 0; replaces the case's, as given)")
    ck.add_argument("--precision", choices=("float64", "float32"), default="float64",
                    help="float64 (default): the case's tolerances; float32: tolerances derived from float32's unit "
                         "roundoff and the case's condition (docs/case-format.md § Precision)")
    ck.add_argument("--verify", action="store_true", help="first recompute every reference from the case's problem "
                    "and inputs with refimpl and refuse (exit 2) a case whose stored references disagree")
    au = sub.add_parser("audit", help="what a solver's gradient is, and where it goes wrong (exit 0 recognised and "
                                      "consistent, 1 inconsistent or unrecognised, 2 bad input, 3 internal error)",
                        description=AUDIT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    au.add_argument("library", choices=("torchdiffeq", "diffrax", "callable", "tape"),
                    help="the solver: a library adapter, or your own function (--target)")
    au.add_argument("--method", nargs="+", metavar="M",
                    help="torchdiffeq: euler midpoint rk4 (fixed grid) or dopri5 bosh3 fehlberg2 adaptive_heun; "
                         "diffrax: Euler Heun Midpoint Ralston (fixed grid) or Dopri5 Tsit5 Bosh3 (adaptive); "
                         "callable/tape: the refimpl scheme your function claims (e.g. rk4). Several: one audit each")
    au.add_argument("--adjoint", choices=("backprop", "backsolve"), default="backprop",
                    help="backprop (odeint / RecursiveCheckpointAdjoint, default) or backsolve (odeint_adjoint / "
                         "BacksolveAdjoint)")
    au.add_argument("--target", metavar="MODULE:FUNCTION", help="callable: member -> SolverOutput; tape: "
                    "(member, x0, theta) -> states, written with NumPy (refimpl.audit.adapters)")
    au.add_argument("--scheme", default=None, help="the refimpl scheme the solver claims (default: its method's name)")
    au.add_argument("--layout", choices=("step", "stage", "constant"), default="step",
                    help="how θ is handed to the solver (refimpl.ode.samples; default step)")
    au.add_argument("--problem", default="tanh-d2", help="tanh-d2 (default), linear-d2 or twolayer-d2h3")
    au.add_argument("--T", type=float, default=1.0, help="final time (default 1)")
    au.add_argument("--family", metavar="N,N,…", help="fixed steps: the N of each member (default 4,8,…,128)")
    au.add_argument("--rtols", metavar="R,R,…", help="adaptive: rtol = atol of each member (default 1e-3,…,1e-6)")
    au.add_argument("--out", type=Path, default=Path("audit-report"), help="report folder (default audit-report)")
    au.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    _executor_options(au)
    return parser


AUDIT_DESCRIPTION = """\
Audit a solver's gradient: run it over a refinement family (N = 4, 8, …, 128 fixed steps, or rtol = 1e-3 … 1e-6),
compare with every reference refimpl has (the discrete adjoint of every named scheme in the layout, the adaptive
gradient variants, the continuous gradients) and say what it is — "equals the discrete adjoint of RK38, step layout,
to 1e-15 (your 'rk4' is RK38)", "converges to the continuous gradient at order 2.00", "matches nothing: the trajectory
already differs at step 1 …" — with the numbers behind it in OUT/audit.md (plots with matplotlib).
How verdicts are decided: docs/theory/audit.md.

exit codes: 0 every gradient recognised and consistent; 1 some gradient inconsistent or unrecognised; 2 bad input
(unknown method, missing library, a target that cannot be imported); 3 internal error of refimpl.
"""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like SIGINT's KeyboardInterrupt (exit 130)."""


@contextmanager
def _sigterm_as_interrupt():
    def raise_terminated(signum, frame):
        raise Terminated()
    try:
        old = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _save_traceback(argv) -> str | None:
    """Write the current exception's traceback (with the command and versions) to a new file; its path, or None."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = (f"refimpl {refimpl.__version__}, Python {platform.python_version()} on {platform.platform()}\n"
            f"command: python -m refimpl {' '.join(map(str, argv))}\n\n{traceback.format_exc()}")
    for folder in (tempfile.gettempdir(), os.getcwd()):
        try:
            fd, path = tempfile.mkstemp(prefix=f"refimpl-crash-{stamp}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return None


def main(argv=None) -> int:
    """Run one command; return its exit code (module docstring). Never raises (except SystemExit from --help)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        with _sigterm_as_interrupt():
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as e:  # argparse exits with 2 on usage errors and 0 on --help
                return int(e.code or 0)
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
                    return export_command(args.dir, args.quick, args.force, executor=executor)
            if args.command == "audit":
                from refimpl.audit.command import audit_command
                return audit_command(args)
            if args.command == "check":
                from refimpl.oracle.commands import check_command
                return check_command(args.case_dir, args.theirs, args.json, rtol=args.rtol, atol=args.atol,
                                     precision=args.precision, verify=args.verify)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output left (`... | head`): not an error of refimpl
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:
        from refimpl.sweep import DASK_MISSING
        if isinstance(e, ImportError) and str(e) == DASK_MISSING:  # --scheduler without dask.distributed
            print(f"error: {e}", file=sys.stderr)
            return 2
        # a bug in refimpl: never exit 1 ("your implementation mismatches")
        path = _save_traceback(argv)
        where = f"the traceback is saved in {path}" if path else "the traceback could not be saved:\n" + \
            traceback.format_exc()
        print(f"internal error in refimpl (exit 3; not a verdict on your implementation): {type(e).__name__}: {e}; "
              f"{where} — please report it", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"status": "internal error", "exit_code": 3, "error": f"{type(e).__name__}: {e}",
                              "traceback_file": path}))
        return 3
    return 2
