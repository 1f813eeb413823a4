r"""Oracle cases on disk: ``CASE_DIR/case.json`` (metadata, validated against ``case_schema.json``) and
``CASE_DIR/arrays.npz`` (NumPy ``.npy`` members; never unpickled) — SPEC §5.

Loading is defensive, because a case directory or a foreign ``.npz`` may come from anywhere:

* JSON: at most :data:`MAX_JSON_BYTES`, UTF-8, no ``NaN``/``Infinity`` constants, no number that overflows to ±inf,
  then the schema (:mod:`refimpl.oracle.json_schema`) and the consistency rules of :class:`Case` (every declared array
  present with its declared shape and dtype, a tolerance for every reference quantity, shapes that agree with the
  problem's dimensions, finite values).
* ``.npz``: read member by member with :mod:`zipfile`; each member must be ``NAME.npy`` with ``NAME`` matching
  :data:`ARRAY_NAME`; the ``.npy`` header is read first and refused if its dtype holds Python objects, is not a real
  number/integer type, or declares more data than the member holds or than :data:`MAX_NPZ_BYTES`; then
  ``numpy.lib.format.read_array(..., allow_pickle=False)``. No file is extracted and no path is taken from the data.

Every failure is a :class:`CaseFormatError` (a ``ValueError``) whose message names the file and the offending item.
Writing is deterministic: the same arrays give the same bytes (sorted members, fixed zip timestamps).
"""
from __future__ import annotations

import io
import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from refimpl.oracle.json_schema import SchemaViolation, validate

__all__ = ["Case", "CaseFormatError", "load_case", "save_case", "read_npz", "write_npz", "read_json", "case_schema",
           "CASE_JSON", "CASE_ARRAYS", "INPUTS", "REFERENCES", "ODE_INPUTS", "ODE_REFERENCES", "WASSERSTEIN_INPUTS",
           "WASSERSTEIN_REFERENCES"]

CASE_JSON = "case.json"
CASE_ARRAYS = "arrays.npz"
#: largest case.json accepted
MAX_JSON_BYTES = 4 * 2 ** 20
#: largest total (declared, uncompressed) array data accepted in one .npz
MAX_NPZ_BYTES = 512 * 2 ** 20
#: most members accepted in one .npz
MAX_NPZ_MEMBERS = 64
#: names an array may have (also the npz member names, without ".npy")
ARRAY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

#: input arrays of an ODE case (what a foreign implementation needs besides case.json)
ODE_INPUTS = {
    "x0": "initial state x_0, shape (d,)",
    "theta": "parameter samples theta_r = theta(sample_times[r]), shape (n_samples, p)",
    "sample_times": "time of each parameter sample, shape (n_samples,)",
    "stage_weights": "stage weight w_r of each sample (SPEC §3), shape (n_samples,)",
    "stage_index": "ERK: row of theta used by stage i of step n, shape (N, s); LMM: the same for the k-1 starter "
                   "steps, shape (k-1, s_starter)",
    "grid_index": "LMM only: row of theta used by f(x_m, .) at grid time t_m, or -1 where unused, shape (N,)",
    "corrected_times": "the times of the rows of corrected_gradient, shape (m,)",
}
#: reference quantities of an ODE case (what a foreign implementation is compared on)
ODE_REFERENCES = {
    "trajectory": "x_0..x_N of the scheme, shape (N+1, d)",
    "loss": "L_h = Phi(x_N), shape ()",
    "discrete_gradient": "dL_h/dtheta_r (discretise-then-optimise), shape (n_samples, p)",
    "grad_x0": "dL_h/dx_0, shape (d,)",
    "normalised_gradient": "g_r = (dL_h/dtheta_r)/(h w_r) (SPEC §3), shape (n_samples, p)",
    "continuous_gradient": "deltaL/deltatheta(t) at the sample times (optimise-then-discretise), shape (n_samples, p)",
    "corrected_gradient": "post-processed discrete gradient (SPEC §3 corrections), shape (m, p)",
}
#: input arrays of a Wasserstein case
WASSERSTEIN_INPUTS = {
    "particles0": "initial particles x_k (rows), the empirical measure (1/n) sum_k delta_{x_k}, shape (n, d)",
    "mean0": "initial Gaussian mean, shape (d,)",
    "cov0": "initial Gaussian covariance, shape (d, d)",
    "coordinates": "RWCD: the coordinate i_k moved at step k (0-based), shape (K,)",
    "step_sizes": "RWCD: the step size eta_i of each coordinate, shape (d,)",
}
#: reference quantities of a Wasserstein case
WASSERSTEIN_REFERENCES = {
    "energy": "F(rho_0), shape ()",
    "wasserstein_gradient": "grad_x deltaF/deltarho[rho_0] at each initial particle, shape (n, d)",
    "particle_trajectory": "the particles after 0..K steps, shape (K+1, n, d)",
    "mean_trajectory": "the Gaussian mean after 0..K steps, shape (K+1, d)",
    "cov_trajectory": "the Gaussian covariance after 0..K steps, shape (K+1, d, d)",
    "exact_mean": "mean of the exact gradient flow at t_k = k h, shape (K+1, d)",
    "exact_cov": "covariance of the exact gradient flow at t_k = k h, shape (K+1, d, d)",
}
#: the keys each Wasserstein energy term needs (refimpl.oracle.wasserstein_cases)
_TERM_KEYS = {"quadratic_potential": ("A",), "quadratic_interaction": ("B",),
              "gaussian_interaction": ("amplitude", "width"), "entropy": (), "kl_to_gaussian": ("mean", "cov")}
#: inputs / references by case kind
INPUTS = {"ode": ODE_INPUTS, "wasserstein": WASSERSTEIN_INPUTS}
REFERENCES = {"ode": ODE_REFERENCES, "wasserstein": WASSERSTEIN_REFERENCES}
_REQUIRED = {"ode": ("x0", "theta", "sample_times", "stage_weights", "trajectory", "loss", "discrete_gradient",
                     "grad_x0"),
             "wasserstein": ("energy",)}


class CaseFormatError(ValueError):
    """A case directory, case.json, or .npz file is malformed; the message names the file and the item."""


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("refimpl.oracle").joinpath("case_schema.json").read_text(encoding="utf-8")


def case_schema() -> dict:
    """The JSON Schema of ``case.json`` (a fresh copy; it ships as package data)."""
    return json.loads(_schema_text())


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
        if not path.is_file():
            raise CaseFormatError(f"{path}: no such file")
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


def read_npz(path, *, max_bytes: int = MAX_NPZ_BYTES) -> dict:
    """The arrays of an ``.npz`` file as a dict of read-only ndarrays (see the module docstring for what is refused).

    Accepted dtypes: real floating point (converted to float64) and integers (kept as int64; booleans refused).
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise CaseFormatError(f"{path}: no such file")
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
                    raise CaseFormatError(f"{path}: member {name[:80]!r} is not NAME.npy with NAME matching "
                                          f"{ARRAY_NAME.pattern}")
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
                arr = np.array(arr, dtype=np.float64 if dtype.kind == "f" else np.int64, order="C")
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


# ---------------------------------------------------------------------------------------------------------------------
# the case object


def _json_shape(value):
    """The shape of a JSON vector (list of numbers) or matrix (list of equal-length lists); None if ragged."""
    if value and isinstance(value[0], list):
        widths = {len(row) if isinstance(row, list) else -1 for row in value}
        return (len(value), widths.pop()) if len(widths) == 1 and -1 not in widths else None
    return (len(value),) if not any(isinstance(v, list) for v in value) else None


def _rational(v) -> Fraction:
    return Fraction(v) if isinstance(v, str) else Fraction(float(v))


@dataclass(frozen=True, eq=False)
class Case:
    """One oracle case: ``metadata`` (the parsed, validated case.json) and ``arrays`` (name → read-only ndarray).

    Construction validates everything (schema + consistency, see :meth:`check`), so a ``Case`` in hand is well formed.
    Convenience accessors: ``name``, ``problem`` (the metadata's problem section), ``tolerances``, ``references``
    (names of the reference quantities), ``x0``, ``theta``, ``T``, ``N``, ``h``, ``sample_times``, ``stage_weights``.
    Rebuild refimpl objects (field, scheme, loss) with :func:`refimpl.oracle.cases.problem_objects`.
    """

    metadata: dict
    arrays: dict = field(repr=False)
    source: str = ""

    def __post_init__(self):
        arrays = {}
        for k, v in dict(self.arrays).items():
            a = np.array(v, copy=True)
            a.flags.writeable = False
            arrays[k] = a
        object.__setattr__(self, "arrays", arrays)
        self.check()

    # accessors --------------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def problem(self) -> dict:
        return self.metadata["problem"]

    @property
    def tolerances(self) -> dict:
        return self.metadata["tolerances"]

    @property
    def references(self) -> list:
        return [k for k, e in self.metadata["arrays"].items() if e["role"] == "reference"]

    @property
    def x0(self) -> np.ndarray:
        return self.arrays["x0"]

    @property
    def theta(self) -> np.ndarray:
        return self.arrays["theta"]

    @property
    def sample_times(self) -> np.ndarray:
        return self.arrays["sample_times"]

    @property
    def stage_weights(self) -> np.ndarray:
        return self.arrays["stage_weights"]

    @property
    def T(self) -> float:
        return self.metadata["problem"]["T"]

    @property
    def N(self) -> int:
        return self.metadata["problem"]["N"]

    @property
    def h(self) -> float:
        return self.metadata["problem"]["h"]

    def __repr__(self) -> str:
        p = self.problem
        if self.metadata["kind"] == "wasserstein":
            return (f"Case({self.name!r}: {p['representation']} d={p['dim']}, {p['step']}, h={p['h']:g}, "
                    f"{p['n_steps']} steps; references {self.references})")
        st = f", starter={p['starter']['name']!r}" if p["starter"] else ""
        return (f"Case({self.name!r}: {p['field']['family']} d={p['field']['dim']}, {p['scheme']['name']}{st}, "
                f"layout={p['layout']!r}, N={p['N']}; references {self.references})")

    # validation -------------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Schema + consistency checks; CaseFormatError naming the offending item."""
        where = self.source or "case"
        try:
            validate(self.metadata, case_schema())
        except SchemaViolation as e:
            raise CaseFormatError(f"{where}: {CASE_JSON} does not satisfy the case schema: {e}") from None
        meta, arrays = self.metadata, self.arrays
        kind, declared = meta["kind"], meta["arrays"]
        if ("scheme" in meta["problem"]) != (kind == "ode"):
            raise CaseFormatError(f"{where}: the problem section does not describe a {kind!r} case")
        for name in _REQUIRED[kind]:
            if name not in declared:
                raise CaseFormatError(f"{where}: required array {name!r} is not declared in {CASE_JSON}")
        for name, entry in declared.items():
            known = (INPUTS if entry["role"] == "input" else REFERENCES)[kind]
            if name not in known:
                raise CaseFormatError(f"{where}: array {name!r} is not a known {entry['role']} (known: "
                                      f"{sorted(known)})")
        missing, extra = sorted(set(declared) - set(arrays)), sorted(set(arrays) - set(declared))
        if missing or extra:
            raise CaseFormatError(f"{where}: {CASE_ARRAYS} and {CASE_JSON} disagree (declared but missing: {missing}; "
                                  f"present but undeclared: {extra})")
        refs = {k for k, e in declared.items() if e["role"] == "reference"}
        if set(meta["tolerances"]) != refs:
            raise CaseFormatError(f"{where}: tolerances must be given for exactly the reference arrays {sorted(refs)}, "
                                  f"got {sorted(meta['tolerances'])}")
        for name, entry in declared.items():
            a = arrays[name]
            if list(a.shape) != entry["shape"]:
                raise CaseFormatError(f"{where}: array {name!r} has shape {list(a.shape)}, declared {entry['shape']}")
            if a.dtype != np.dtype(entry["dtype"]):
                raise CaseFormatError(f"{where}: array {name!r} has dtype {a.dtype}, declared {entry['dtype']}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise CaseFormatError(f"{where}: array {name!r} contains NaN or inf")
        if kind == "ode":
            self._check_ode_problem(where)
        else:
            self._check_wasserstein_problem(where)

    def _check_wasserstein_problem(self, where: str) -> None:
        p, a = self.metadata["problem"], self.arrays
        d, K = p["dim"], p["n_steps"]
        for i, term in enumerate(p["energy"]["terms"]):
            missing = [k for k in _TERM_KEYS[term["kind"]] if k not in term]
            if missing:
                raise CaseFormatError(f"{where}: problem.energy.terms[{i}] ({term['kind']}) misses {missing}")
            for key, shape in (("A", (d, d)), ("B", (d, d)), ("cov", (d, d)), ("b", (d,)), ("mean", (d,))):
                if key in term and _json_shape(term[key]) != shape:
                    raise CaseFormatError(f"{where}: problem.energy.terms[{i}].{key} must have shape {shape}")
            if p["representation"] == "particles" and term["kind"] in ("entropy", "kl_to_gaussian") \
                    and term.get("bandwidth") is None:
                raise CaseFormatError(f"{where}: problem.energy.terms[{i}]: the particle entropy needs a bandwidth")
        init = p["initial"]
        if _json_shape(init["mean"]) != (d,) or _json_shape(init["cov"]) != (d, d):
            raise CaseFormatError(f"{where}: problem.initial.mean/cov must have shapes ({d},) and ({d}, {d})")
        if p["representation"] == "particles":
            n = init.get("n", -1)
            expected = {"particles0": (n, d), "wasserstein_gradient": (n, d), "particle_trajectory": (K + 1, n, d),
                        "energy": ()}
        else:
            expected = {"mean0": (d,), "cov0": (d, d), "mean_trajectory": (K + 1, d), "cov_trajectory": (K + 1, d, d),
                        "exact_mean": (K + 1, d), "exact_cov": (K + 1, d, d), "energy": ()}
        if p["step"] == "rwcd":
            expected.update(coordinates=(K,), step_sizes=(d,))
        for name, arr in a.items():
            if name not in expected:
                raise CaseFormatError(f"{where}: array {name!r} does not belong to a {p['representation']} case")
            if arr.shape != expected[name]:
                raise CaseFormatError(f"{where}: array {name!r} must have shape {expected[name]} (d = {d}, "
                                      f"K = {K}), got {arr.shape}")
        needed = ("particles0",) if p["representation"] == "particles" else ("mean0", "cov0")
        needed += ("coordinates", "step_sizes") if p["step"] == "rwcd" else ()
        for name in needed:
            if name not in a:
                raise CaseFormatError(f"{where}: a {p['representation']} {p['step']} case needs the input array "
                                      f"{name!r}")
        if p["step"] == "rwcd":
            c = a["coordinates"]
            if c.dtype != np.int64 or (c.size and (c.min() < 0 or c.max() >= d)):
                raise CaseFormatError(f"{where}: 'coordinates' must be int64 indices in [0, {d})")
            if np.any(a["step_sizes"] <= 0):
                raise CaseFormatError(f"{where}: 'step_sizes' must be > 0")

    def _check_ode_problem(self, where: str) -> None:
        p, a = self.metadata["problem"], self.arrays
        fld, d, n_p, N = p["field"], p["field"]["dim"], p["field"]["n_params"], p["N"]
        n_s = a["theta"].shape[0] if a["theta"].ndim == 2 else -1
        expected = {"x0": (d,), "theta": (n_s, n_p), "sample_times": (n_s,), "stage_weights": (n_s,),
                    "trajectory": (N + 1, d), "loss": (), "discrete_gradient": (n_s, n_p), "grad_x0": (d,),
                    "normalised_gradient": (n_s, n_p), "continuous_gradient": (n_s, n_p), "grid_index": (N,)}
        for name, shape in expected.items():
            if name in a and a[name].shape != shape:
                raise CaseFormatError(f"{where}: array {name!r} must have shape {shape} (d = {d}, p = {n_p}, N = {N}, "
                                      f"n_samples = {n_s}), got {a[name].shape}")
        for name in ("stage_index", "grid_index"):
            if name in a and a[name].size and (a[name].min() < -1 or a[name].max() >= n_s):
                raise CaseFormatError(f"{where}: array {name!r} holds indices outside [-1, {n_s})")
        if ("corrected_gradient" in a) != ("corrected_times" in a):
            raise CaseFormatError(f"{where}: 'corrected_gradient' and 'corrected_times' come together")
        if "corrected_gradient" in a:
            m = a["corrected_times"].shape[0] if a["corrected_times"].ndim == 1 else -1
            if a["corrected_gradient"].shape != (m, n_p):
                raise CaseFormatError(f"{where}: array 'corrected_gradient' must have shape (m, p) = ({m}, {n_p}) "
                                      f"with m = len(corrected_times)")
        if len(p["loss"]["y"]) != d:
            raise CaseFormatError(f"{where}: problem.loss.y has {len(p['loss']['y'])} entries, expected dim = {d}")
        if not math.isclose(p["h"], p["T"] / N, rel_tol=1e-12):
            raise CaseFormatError(f"{where}: problem.h = {p['h']!r} is not T/N = {p['T'] / N!r}")
        for name, M in fld.get("fixed", {}).items():
            if len({len(row) for row in M}) > 1 or not M:
                raise CaseFormatError(f"{where}: problem.field.fixed.{name} is not a rectangular matrix")
        scheme, starter = p["scheme"], p["starter"]
        if (scheme["family"] == "multistep") != (starter is not None):
            raise CaseFormatError(f"{where}: problem.starter must be a tableau for a multistep scheme and null for a "
                                  f"Runge-Kutta scheme")
        try:
            for tab in [t for t in (scheme, starter) if t and t["family"] == "runge_kutta"]:
                s = len(tab["b"])
                if len(tab["A"]) != s or any(len(r) != s for r in tab["A"]) or len(tab["c"]) != s:
                    raise CaseFormatError(f"{where}: tableau {tab['name']!r}: A must be {s}x{s} and c of length {s}")
                [_rational(v) for row in tab["A"] for v in row + tab["b"] + tab["c"]]
            if scheme["family"] == "multistep":
                [_rational(v) for v in scheme["alpha"] + scheme["beta"]]
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            raise CaseFormatError(f"{where}: a scheme coefficient is not a number ({e})") from None


# ---------------------------------------------------------------------------------------------------------------------
# directories


def load_case(directory) -> Case:
    """Load and validate ``directory/case.json`` + ``directory/arrays.npz``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CaseFormatError(f"{directory}: not a case directory (expected a folder with {CASE_JSON} and "
                              f"{CASE_ARRAYS})")
    meta = read_json(directory / CASE_JSON)
    arrays = read_npz(directory / CASE_ARRAYS)
    return Case(meta, arrays, source=str(directory))


def save_case(case: Case, directory) -> Path:
    """Write ``case`` to ``directory`` (created if needed; its two files are overwritten). Returns the directory."""
    if not isinstance(case, Case):
        raise TypeError(f"case must be a refimpl.oracle.Case, got {type(case).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(case.metadata, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    (directory / CASE_JSON).write_text(text, encoding="utf-8")
    write_npz(directory / CASE_ARRAYS, case.arrays)
    return directory
