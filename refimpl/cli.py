"""Command-line interface of refimpl: the validation report and the oracle.

``python -m refimpl validate [--quick] [--out DIR] [--only NAME …]``
    runs every experiment registered in ``validation.EXPERIMENTS`` (the ``validation/`` folder beside the package) and
    writes ``DIR/index.md`` with one PASS/FAIL line per claim. Exit 0 every claim passed, 1 some claim failed.
``python -m refimpl cases export DIR [--quick]``
    writes the battery of oracle cases (JSON metadata + ``.npz`` arrays, ``docs/case-format.md``) to DIR.
``python -m refimpl check CASE_DIR THEIRS.npz [--json]``
    compares a foreign implementation's arrays with a case. Exit 0 pass, 1 mismatch.

Exit code 2 always means bad input (usage errors, missing or malformed files). The CLI composes; nothing imports it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
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


def validate(out: Path, quick: bool, only: list[str] | None = None) -> int:
    """Run the registered experiments; write ``out/index.md``; return the exit code."""
    validation = _import_validation()
    names = [n for n in validation.EXPERIMENTS if not only or n in only]
    unknown = sorted(set(only or []) - set(validation.EXPERIMENTS))
    if unknown:
        print(f"error: unknown experiment(s) {unknown}; known: {validation.EXPERIMENTS}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    rows, sections = [], []
    for k, name in enumerate(names, 1):
        t0 = time.perf_counter()
        print(f"[{k}/{len(names)}] {name} ...", flush=True)
        try:
            claims = importlib.import_module(f"validation.{name}").run(out, quick)
        except Exception:  # an experiment that crashes is a failed claim, reported with its traceback
            tb = traceback.format_exc()
            (out / f"{name}.md").write_text(f"# {name}\n\nThe experiment raised:\n\n```\n{tb}```\n")
            claims = [validation.Claim(name, "experiment runs to completion", False, tb.strip().splitlines()[-1])]
        dt = time.perf_counter() - t0
        for c in claims:
            rows.append((name, c))
            print(f"    {'PASS' if c.passed else 'FAIL'}  {c.source}: {c.statement} — {c.evidence}", flush=True)
        sections.append(f"- [{name}]({name}.md) ({dt:.1f} s)")
    n_fail = sum(not c.passed for _, c in rows)
    lines = [
        "# refimpl validation report", "",
        f"refimpl {refimpl.__version__}; mode: {'quick' if quick else 'full'}; "
        f"{len(rows) - n_fail}/{len(rows)} claims pass.", "",
        "| result | experiment | source | claim | evidence |", "|---|---|---|---|---|",
    ]
    lines += [f"| {'PASS' if c.passed else 'FAIL'} | {n} | {c.source} | {c.statement} | {c.evidence} |" for n, c in rows]
    lines += ["", "## Sections", ""] + sections + [""]
    (out / "index.md").write_text("\n".join(lines))
    print(f"{'PASS' if n_fail == 0 else 'FAIL'}: {len(rows) - n_fail}/{len(rows)} claims pass; report in {out / 'index.md'}")
    return 0 if n_fail == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m refimpl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="run the validation experiments and write the report")
    v.add_argument("--quick", action="store_true", help="small sizes, for CI")
    v.add_argument("--out", type=Path, default=REPO_ROOT / "validation" / "report", help="report folder")
    v.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    # oracle (docs/case-format.md): refimpl.oracle.commands
    cases = sub.add_parser("cases", help="oracle cases as data").add_subparsers(dest="cases_command", required=True)
    ex = cases.add_parser("export", help="write the battery of oracle cases (JSON metadata + .npz arrays) to DIR")
    ex.add_argument("dir", type=Path, metavar="DIR")
    ex.add_argument("--quick", action="store_true", help="a small subset (for tests)")
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
            return validate(args.out, args.quick, args.only)
        if args.command == "cases":
            from refimpl.oracle.commands import export_command
            return export_command(args.dir, args.quick)
        if args.command == "check":
            from refimpl.oracle.commands import check_command
            return check_command(args.case_dir, args.theirs, args.json)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2
