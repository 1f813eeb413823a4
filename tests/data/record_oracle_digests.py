"""Record the digest of every case of one or more exports: ``python tests/data/record_oracle_digests.py DIR [DIR ...]``
after ``python -m refimpl cases export DIR`` (and ``--quick``: its subset has cases of its own) writes
tests/data/oracle_digests.json.

A case's digest is ``json_sha256`` of the ``integrity`` section of its case.json (the SHA-256 of every array, of the
problem and of the tolerances: refimpl.oracle.case.integrity_of), so it changes exactly when one of the stored bytes
does. Re-record only when a case's mathematics changes on purpose, and say so in the commit.
"""
import json
import sys
from pathlib import Path

from refimpl.oracle.case import json_sha256


def digests(export_dir: Path) -> dict:
    index = json.loads((export_dir / "index.json").read_text(encoding="utf-8"))
    names = [entry["name"] if isinstance(entry, dict) else entry for entry in index["cases"]]
    out = {}
    for name in names:
        meta = json.loads((export_dir / name / "case.json").read_text(encoding="utf-8"))
        out[name] = json_sha256(meta["integrity"])
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    table = {}
    for folder in sys.argv[1:]:
        for name, digest in digests(Path(folder)).items():
            if table.setdefault(name, digest) != digest:
                sys.exit(f"{name}: two exports disagree")
    target = Path(__file__).with_name("oracle_digests.json")
    target.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(table)} case digests written to {target}")
