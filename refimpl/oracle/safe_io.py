r"""Reading and writing the oracle's files defensively, for any case kind: JSON text, ``.npz`` archives, the case
schema, and the error every loader raises (:class:`CaseFormatError`).

A case directory or a foreign ``.npz`` may come from anywhere, so nothing here trusts its input:

* JSON (:func:`read_json`): at most :data:`MAX_JSON_BYTES`, UTF-8, no ``NaN``/``Infinity`` constants, no number that
  overflows to ±inf.
* ``.npz`` (:func:`read_npz`): read member by member with :mod:`zipfile`; each member must be ``NAME.npy`` with
  ``NAME`` matching :data:`ARRAY_NAME`; the ``.npy`` header is read first and refused if its dtype holds Python
  objects, is not a real number/integer type, or declares more data than the member holds or than
  :data:`MAX_NPZ_BYTES`; then ``numpy.lib.format.read_array(..., allow_pickle=False)``. No file is extracted and no
  path is taken from the data.
* The JSON Schema of ``case.json`` (:func:`case_schema`) ships as package data beside this module; it is checked by
  :mod:`refimpl.oracle.json_schema`.

Every failure is a :class:`CaseFormatError` (a ``ValueError``) whose message names the file and the offending item.
Writing is deterministic (:func:`write_npz`): the same arrays give the same bytes (sorted members, fixed zip
timestamps). What the files hold is defined in ``docs/case-format.md``.
"""
from __future__ import annotations

import io
import json
import math
import re
import stat
import zipfile
import zlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["CaseFormatError", "read_json", "read_npz", "write_npz", "case_schema", "MAX_JSON_BYTES", "MAX_NPZ_BYTES",
           "MAX_NPZ_MEMBERS", "ARRAY_NAME"]

#: largest case.json accepted
MAX_JSON_BYTES = 4 * 2 ** 20
#: largest total (declared, uncompressed) array data accepted in one .npz
MAX_NPZ_BYTES = 512 * 2 ** 20
#: most members accepted in one .npz
MAX_NPZ_MEMBERS = 64
#: names an array may have (also the npz member names, without ".npy")
ARRAY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class CaseFormatError(ValueError):
    """A case directory, case.json, or .npz file is malformed; the message names the file and the item."""


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("refimpl.oracle").joinpath("case_schema.json").read_text(encoding="utf-8")


def case_schema() -> dict:
    """The JSON Schema of ``case.json`` (a fresh copy; it ships as package data)."""
    return json.loads(_schema_text())


def _require_regular_file(path: Path) -> None:
    """CaseFormatError unless ``path`` is a regular file (after symbolic links), saying what it is instead: a missing
    path, a directory, a FIFO, a device or a socket are refused before anything opens them (opening a FIFO would
    block)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CaseFormatError(f"{path}: no such file") from None
    except OSError as e:
        raise CaseFormatError(f"{path}: cannot be read ({e.strerror or e})") from None
    if stat.S_ISREG(mode):
        return
    what = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise CaseFormatError(f"{path}: is {what}, not a file" if what != "not a regular file"
                          else f"{path}: not a regular file")


# ---------------------------------------------------------------------------------------------------------------------
# JSON


def _refuse_constant(name):
    raise ValueError(f"the JSON constant {name} is not allowed (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} overflows float64")
    return value


def read_json(path) -> dict:
    """Parse a JSON file defensively (size limit, UTF-8, finite numbers only); CaseFormatError on any problem."""
    path = Path(path)
    try:
        _require_regular_file(path)
        if path.stat().st_size > MAX_JSON_BYTES:
            raise CaseFormatError(f"{path}: larger than {MAX_JSON_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except CaseFormatError:
        raise
    except UnicodeDecodeError as e:
        raise CaseFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise CaseFormatError(f"{path}: JSON nested too deeply") from None
    except (ValueError, OSError) as e:  # json.JSONDecodeError is a ValueError
        raise CaseFormatError(f"{path}: not valid JSON ({e})") from None


# ---------------------------------------------------------------------------------------------------------------------
# npz


def _read_header(fp, where: str):
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fp)
    raise CaseFormatError(f"{where}: unsupported .npy format version {version}")


def read_npz(path, *, max_bytes: int = MAX_NPZ_BYTES, native: bool = False, names=None) -> dict:
    """The arrays of an ``.npz`` file as a dict of read-only ndarrays (see the module docstring for what is refused).

    Accepted dtypes: real floating point and integers (booleans refused). By default floats are converted to float64
    and integers to int64; with ``native=True`` each array keeps the (native-byte-order) dtype it was stored with, so
    that a caller can check a declared dtype *before* any cast (a float32 array stays float32). ``names``: the array
    names the caller accepts; a member whose name is not a valid array name then gets a message listing them.
    """
    path = Path(path)
    try:
        _require_regular_file(path)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos:
                raise CaseFormatError(f"{path}: the archive holds no arrays")
            if len(infos) > MAX_NPZ_MEMBERS:
                raise CaseFormatError(f"{path}: more than {MAX_NPZ_MEMBERS} members")
            out, total = {}, 0
            for info in infos:
                name = info.filename
                key = name[:-4] if name.endswith(".npy") else None
                if key is None or not ARRAY_NAME.fullmatch(key):
                    hint = ""
                    if key is not None and ARRAY_NAME.fullmatch(key.lower()):
                        hint = f"; array names are lower case: {key.lower()!r}?"
                    if names is not None:
                        hint += f" (the valid names here: {', '.join(names)})"
                    raise CaseFormatError(f"{path}: member {name[:80]!r} is not NAME.npy with NAME matching "
                                          f"{ARRAY_NAME.pattern}{hint}")
                if key in out:
                    raise CaseFormatError(f"{path}: array {key!r} appears twice")
                where = f"{path}[{key}]"
                total += info.file_size
                if total > max_bytes:
                    raise CaseFormatError(f"{path}: more than {max_bytes} bytes of array data")
                with zf.open(info) as fp:
                    shape, _, dtype = _read_header(fp, where)
                    data_bytes = info.file_size - fp.tell()
                if dtype.hasobject:
                    raise CaseFormatError(f"{where}: object arrays are refused (loading them would unpickle)")
                if dtype.kind not in "fiu" or dtype.itemsize > 8:
                    raise CaseFormatError(f"{where}: dtype {dtype} is not accepted (use float64, or int64 for indices)")
                if len(shape) > 4:
                    raise CaseFormatError(f"{where}: {len(shape)} dimensions (at most 4)")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes != data_bytes:
                    raise CaseFormatError(f"{where}: header declares shape {shape} ({nbytes} bytes of data) but the "
                                          f"member holds {data_bytes}")
                with zf.open(info) as fp:
                    arr = np.lib.format.read_array(fp, allow_pickle=False)
                target = dtype.newbyteorder("=") if native else (np.float64 if dtype.kind == "f" else np.int64)
                arr = np.array(arr, dtype=target, order="C")
                arr.flags.writeable = False
                out[key] = arr
            return out
    except CaseFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise CaseFormatError(f"{path}: not a valid .npz (zip) archive ({e})") from None
    except (ValueError, OSError, EOFError, zlib.error, NotImplementedError, OverflowError, MemoryError) as e:
        raise CaseFormatError(f"{path}: unreadable array data ({type(e).__name__}: {e})") from None


def write_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as an ``.npz`` (deflated ``.npy`` members, sorted, fixed timestamps: deterministic bytes)."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            if not ARRAY_NAME.fullmatch(name):
                raise ValueError(f"arrays: name {name!r} does not match {ARRAY_NAME.pattern}")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.array(arrays[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
