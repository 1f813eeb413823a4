"""What the CLI subcommands ``cases export DIR`` and ``check CASE_DIR THEIRS.npz`` do, as functions that return the
exit code and never raise on bad input: every loader/validation error is printed as one ``error: ...`` line on stderr
(and, with ``--json``, as ``{"status": "bad input", ...}`` on stdout).

Exit codes (:data:`EXIT_CODES`; ``docs/case-format.md`` § Exit codes): 0 pass, 1 mismatch (their arrays disagree with
the case), 2 bad input (usage, unreadable or malformed files, a case that fails its integrity check or, with
``--verify``, its recomputation), 3 internal error of refimpl (never a verdict on the user's code; :mod:`refimpl.cli`
saves the traceback), 130 interrupted (SIGINT/SIGTERM).
"""
from __future__ import annotations

import difflib
import json
import sys
import time
import zipfile
import zlib
from pathlib import Path

from refimpl.oracle.safe_io import CaseFormatError

__all__ = ["export_command", "check_command", "BAD_INPUT_ERRORS", "EXIT_CODES", "announce_numba_compile"]

#: the exceptions that mean "bad input" (exit 2); anything else is a bug in refimpl (exit 3, refimpl.cli)
BAD_INPUT_ERRORS = (CaseFormatError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                    OverflowError, MemoryError, RecursionError)

#: exit code → meaning (also in ``python -m refimpl check --help``)
EXIT_CODES = {0: "pass: every provided quantity is within tolerance",
              1: "mismatch: some quantity is not (the report names the worst entry)",
              2: "bad input: usage error; missing, unreadable or malformed file; a case that fails its integrity check "
                 "or (--verify) its recomputation",
              3: "internal error in refimpl (not a verdict on your code); the traceback is saved to a file it names",
              130: "interrupted (SIGINT/SIGTERM)"}

_ANNOUNCED = False


def announce_numba_compile() -> None:
    """One line on stderr, once per process, before the first use of the Numba kernels (compiling them takes ~20 s
    the first time; Numba caches them on disk afterwards)."""
    global _ANNOUNCED
    if not _ANNOUNCED:
        _ANNOUNCED = True
        print("loading Numba kernels (compiled on first use, ~20 s; cached afterwards)…", file=sys.stderr, flush=True)


def _bad_input(message: str, as_json: bool) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"status": "bad input", "exit_code": 2, "error": message}))
    return 2


def _message(e: BaseException) -> str:
    return str(e) if isinstance(e, CaseFormatError) else f"{type(e).__name__}: {e}"


def export_command(directory, quick: bool = False, force: bool = False, executor=None) -> int:
    """Export the battery (cases computed on ``executor``, default serial) to ``directory`` atomically
    (:func:`refimpl.oracle.battery.export_battery`); 0 on success,
    2 if the directory is refused or cannot be written, 130 if interrupted (the target is then unchanged)."""
    from refimpl.oracle.battery import export_battery

    t0 = time.perf_counter()
    announce_numba_compile()
    try:
        names = export_battery(directory, quick=quick, force=force, executor=executor)
    except BAD_INPUT_ERRORS as e:
        return _bad_input(_message(e), False)
    except KeyboardInterrupt as e:
        if getattr(e, "completed", False):
            print(f"interrupted after the new export was in place: {directory} is complete", file=sys.stderr)
        else:
            print(f"interrupted: {directory} is unchanged (the partial new export was removed)", file=sys.stderr)
        return 130
    print(f"wrote {len(names)} cases to {directory} in {time.perf_counter() - t0:.1f} s (index: "
          f"{Path(directory) / 'index.json'})")
    return 0


def _resolve_case_dir(case_dir: Path) -> Path:
    """``case_dir`` if it looks like a case; CaseFormatError with what to name instead when it is an export root or a
    missing folder of an export."""
    from refimpl.oracle.battery import INDEX_JSON

    index = case_dir / INDEX_JSON
    if case_dir.is_dir() and not (case_dir / "case.json").exists() and index.is_file():
        try:
            names = json.loads(index.read_text(encoding="utf-8"))["cases"]
        except (OSError, ValueError, KeyError, TypeError):
            names = []
        example = f"{case_dir / names[0]}" if names else f"{case_dir}/<case name>"
        raise CaseFormatError(f"{case_dir} is an export root ({len(names)} cases), not a case: name one case folder, "
                              f"e.g. `python -m refimpl check {example} THEIRS.npz` (the names are listed in "
                              f"{index})")
    if not case_dir.exists() and (case_dir.parent / INDEX_JSON).is_file():
        try:
            names = json.loads((case_dir.parent / INDEX_JSON).read_text(encoding="utf-8"))["cases"]
        except (OSError, ValueError, KeyError, TypeError):
            names = []
        close = difflib.get_close_matches(case_dir.name, [str(n) for n in names], n=3)
        raise CaseFormatError(f"{case_dir}: no such case in the export {case_dir.parent}"
                              + (f" (did you mean {', '.join(close)}?)" if close else
                                 f" (the names are listed in {case_dir.parent / INDEX_JSON})"))
    return case_dir


def _verify(case) -> dict:
    """Recompute the references of ``case`` (refimpl.oracle.verify); CaseFormatError naming the first stored reference
    that is not what refimpl computes. Returns a summary for the report."""
    from refimpl.oracle.verify import verify_case

    if case.kind.family == "ode":
        announce_numba_compile()
    try:
        report = verify_case(case)
    except NotImplementedError as e:
        raise CaseFormatError(f"--verify: {e}") from None
    for q in report.quantities:
        if not q.passed:
            raise CaseFormatError(f"{case.source or case.name}: --verify: the stored reference {q.name!r} is not what "
                                  f"refimpl computes from the case's problem and inputs (max rel error "
                                  f"{q.max_rel_error:.3g}, worst entry {q.worst_index}: stored {q.worst_reference!r}, "
                                  f"recomputed {q.worst_theirs!r}); the case was modified or made by another refimpl")
    return {"recomputed": [q.name for q in report.quantities], "not_recomputable": list(report.not_provided)}


def check_command(case_dir, theirs, as_json: bool = False, *, rtol=None, atol=None, precision: str = "float64",
                  verify: bool = False) -> int:
    """Compare ``theirs`` (an .npz path) with the case in ``case_dir``; print the report; return 0, 1 or 2.

    ``rtol``/``atol`` override the tolerance of every quantity; ``precision`` "float64" (the case's tolerances) or
    "float32" (the float32 profile, :mod:`refimpl.oracle.precision`); ``verify``: recompute every reference first
    (exit 2 if one disagrees)."""
    from refimpl.oracle.case import load_case
    from refimpl.oracle.comparison import compare

    try:
        case = load_case(_resolve_case_dir(Path(case_dir)))
        verified = _verify(case) if verify else None
        report = compare(case, Path(theirs), rtol=rtol, atol=atol, precision=precision)
    except BAD_INPUT_ERRORS as e:
        return _bad_input(_message(e), as_json)
    try:
        _print_report(report, verified, as_json)
    except BrokenPipeError:  # e.g. `check ... | head`: the reader left; the verdict is still the exit code
        _silence_stdout()
    return report.exit_code


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _print_report(report, verified, as_json: bool) -> None:
    if as_json:
        out = report.to_dict()
        if verified is not None:
            out["verified"] = verified
        print(json.dumps(out, indent=1, allow_nan=False))
    else:
        if verified is not None:
            extra = (f"; not recomputable: {', '.join(verified['not_recomputable'])}"
                     if verified["not_recomputable"] else "")
            print(f"verified: {len(verified['recomputed'])} references recomputed from the case's inputs agree with "
                  f"the stored ones{extra}")
        print(report.table(), flush=True)
