"""What the CLI subcommands ``cases export DIR`` and ``check CASE_DIR THEIRS.npz [--json]`` do, as functions that
return the exit code (0 pass, 1 mismatch, 2 bad input) and never raise on bad input: every loader/validation error is
printed as one ``error: ...`` line on stderr (and, with ``--json``, as ``{"status": "bad input", ...}`` on stdout)."""
from __future__ import annotations

import json
import sys
import time
import zipfile
import zlib
from pathlib import Path

from refimpl.oracle.safe_io import CaseFormatError

__all__ = ["export_command", "check_command", "BAD_INPUT_ERRORS"]

#: the exceptions that mean "bad input" (exit 2); anything else is a bug in refimpl and propagates
BAD_INPUT_ERRORS = (CaseFormatError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                    OverflowError, MemoryError, RecursionError)


def _bad_input(message: str, as_json: bool) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"status": "bad input", "exit_code": 2, "error": message}))
    return 2


def export_command(directory, quick: bool = False, executor=None) -> int:
    """Export the battery to ``directory`` (cases computed on ``executor``, default serial); 0 on success, 2 if the
    directory cannot be written."""
    from refimpl.oracle.battery import export_battery

    t0 = time.perf_counter()
    try:
        names = export_battery(Path(directory), quick=quick, executor=executor)
    except BAD_INPUT_ERRORS as e:
        return _bad_input(f"{type(e).__name__}: {e}" if not isinstance(e, CaseFormatError) else str(e), False)
    print(f"wrote {len(names)} cases to {directory} in {time.perf_counter() - t0:.1f} s (index: "
          f"{Path(directory) / 'index.json'})")
    return 0


def check_command(case_dir, theirs, as_json: bool = False) -> int:
    """Compare ``theirs`` (an .npz path) with the case in ``case_dir``; print the report; return 0, 1 or 2."""
    from refimpl.oracle.comparison import compare

    try:
        report = compare(Path(case_dir), Path(theirs))
    except BAD_INPUT_ERRORS as e:
        return _bad_input(str(e) if isinstance(e, CaseFormatError) else f"{type(e).__name__}: {e}", as_json)
    print(report.to_json() if as_json else report.table())
    return report.exit_code
