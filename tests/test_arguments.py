"""refimpl.arguments: every check accepts the valid forms and rejects each bad form with the right exception type and
a message that starts with (so names) the argument."""
import fractions

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ad import Variable, grad, hvp, ops
from refimpl.arguments import (as_coordinate, as_float_array, as_points_1d, as_positive_integer, as_real_array,
                               as_real_scalar, as_symmetric_matrix, as_vector, check_finite, underlying_array)


def _raises_naming(exc, fn, name):
    """Call fn(); it must raise exactly ``exc`` with a message that starts with ``name``."""
    with pytest.raises(exc) as info:
        fn()
    assert type(info.value) is exc
    assert str(info.value).startswith(name), str(info.value)


# ---------------------------------------------------------------------------------------------------------------------
# underlying_array, as_real_array, check_finite


def test_underlying_array_unwraps_variables():
    a = np.arange(3.0)
    assert underlying_array(a) is a
    seen = []

    def f(x):
        seen.append((isinstance(x, Variable), underlying_array(x)))
        return ops.sum(x * x * x)

    grad(f)(a)  # x is a Variable on the tape
    hvp(f)(a, np.ones(3))  # x is a Variable whose value is itself taped (second order)
    assert seen and all(is_var for is_var, _ in seen)
    for _, raw in seen:
        assert type(raw) is np.ndarray
        np.testing.assert_array_equal(raw, a)


@pytest.mark.parametrize("good", [[1, 2], np.arange(3, dtype=np.int8), np.ones((2, 2), dtype=np.float32), 3.5, []])
def test_as_real_array_accepts_real_dtypes_unchanged(good):
    out = as_real_array(good, "z", "a real array")
    np.testing.assert_array_equal(out, np.asarray(good))
    assert out.dtype == np.asarray(good).dtype  # no conversion: callers choose it


@pytest.mark.parametrize("bad", ["abc", b"abc", None, np.array([1j]), np.array([True]),
                                 np.array([1, "a"], dtype=object), [fractions.Fraction(1, 3)]])
def test_as_real_array_rejects_other_kinds(bad):
    _raises_naming(TypeError, lambda: as_real_array(bad, "z", "a real array"), "z must be a real array")


def test_check_finite_names_the_first_bad_index():
    check_finite(np.array([0.0, -1e308]), "v")  # finite: no error
    with pytest.raises(ValueError, match=r"^v has a non-finite entry \(NaN or inf\) at index 2$"):
        check_finite(np.array([0.0, 1.0, np.nan, np.inf]), "v")
    with pytest.raises(ValueError, match=r"^M has a non-finite entry \(NaN or inf\) at index \(1, 0\)$"):
        check_finite(np.array([[0.0, 1.0], [-np.inf, 2.0]]), "M")


# ---------------------------------------------------------------------------------------------------------------------
# the dtype policy: as_float_array, and every array check that follows it

_OTHER_PRECISIONS = [np.float16, np.float32] + ([np.longdouble] if np.dtype(np.longdouble).itemsize > 8 else [])
_POLICY_CHECKS = {  # name -> (check, a valid float64 value of the right shape)
    "as_float_array": (lambda x: as_float_array(x, "a"), np.array([[1.0, 2.0]])),
    "as_vector": (lambda x: as_vector(x, None, "a"), np.array([1.0, 2.0])),
    "as_points_1d": (lambda x: as_points_1d(x, "a"), np.array([1.0, 2.0])),
    "as_symmetric_matrix": (lambda x: as_symmetric_matrix(x, None, "a"), np.array([[2.0, 1.0], [1.0, 2.0]])),
}


@pytest.mark.parametrize("check", sorted(_POLICY_CHECKS))
def test_policy_checks_accept_float64_and_promote_integers_exactly(check):
    fn, valid = _POLICY_CHECKS[check]
    out = fn(valid)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, valid)
    ints = fn(valid.astype(np.int64))
    assert ints.dtype == np.float64
    np.testing.assert_array_equal(ints, valid)
    np.testing.assert_array_equal(fn(valid.tolist()), valid)  # Python floats are float64
    big_endian = fn(valid.astype(">f8"))  # float64 in the other byte order: same numbers, converted exactly
    assert big_endian.dtype == np.float64
    np.testing.assert_array_equal(big_endian, valid)


@pytest.mark.parametrize("dtype", _OTHER_PRECISIONS, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("check", sorted(_POLICY_CHECKS))
def test_policy_checks_refuse_other_float_precisions_naming_the_argument(check, dtype):
    fn, valid = _POLICY_CHECKS[check]
    with pytest.raises(TypeError) as info:
        fn(valid.astype(dtype))
    message = str(info.value)
    assert type(info.value) is TypeError
    assert message.startswith(f"a has dtype {np.dtype(dtype).name}"), message
    assert "cast explicitly" in message and "a.astype(np.float64)" in message


@pytest.mark.parametrize("check", sorted(_POLICY_CHECKS))
def test_policy_checks_refuse_bool_object_str_and_complex(check):
    fn, valid = _POLICY_CHECKS[check]
    for bad in (valid > 0, valid.astype(object), valid.astype(str), valid.astype(np.complex128), "abc", None):
        with pytest.raises(TypeError) as info:
            fn(bad)
        assert type(info.value) is TypeError and str(info.value).startswith("a must be a real"), str(info.value)


@pytest.mark.parametrize("check", sorted(_POLICY_CHECKS))
def test_policy_checks_refuse_non_finite_naming_argument_and_index(check):
    fn, valid = _POLICY_CHECKS[check]
    bad = valid.copy()
    bad.flat[-1] = np.nan
    if check == "as_symmetric_matrix":
        bad[0, 1] = bad[1, 0] = np.inf
    where = {1: "1", 2: "(0, 1)"}[valid.ndim]
    _raises_naming(ValueError, lambda: fn(bad), f"a has a non-finite entry (NaN or inf) at index {where}")


def test_as_float_array_returns_the_callers_float64_array_without_a_copy():
    a = np.arange(6.0).reshape(2, 3)
    assert as_float_array(a, "a") is a or np.shares_memory(as_float_array(a, "a"), a)
    assert np.shares_memory(as_float_array(a.T, "a"), a)  # no contiguity is imposed: callers choose it


def test_as_float_array_complex_only_where_allowed():
    z = np.array([1.0 + 2.0j, -0.5j])
    out = as_float_array(z, "z", allow_complex=True)
    assert out.dtype == np.complex128 and np.shares_memory(out, z)
    assert as_float_array([1, 2], "z", allow_complex=True).dtype == np.float64  # real input stays real
    _raises_naming(TypeError, lambda: as_float_array(z, "z"), "z must be a real array, got dtype complex128")
    _raises_naming(TypeError, lambda: as_float_array(z.astype(np.complex64), "z", allow_complex=True),
                   "z has dtype complex64")
    with pytest.raises(TypeError, match=r"z\.astype\(np\.complex128\)"):
        as_float_array(z.astype(np.complex64), "z", allow_complex=True)
    _raises_naming(TypeError, lambda: as_float_array(np.float32([1.0]), "z", allow_complex=True),
                   "z has dtype float32; refimpl computes in float64 or complex128")
    _raises_naming(ValueError, lambda: as_float_array([1j, np.nan], "z", allow_complex=True),
                   "z has a non-finite entry (NaN or inf) at index 1")


def test_as_float_array_promotes_integers_only_where_float64_is_exact():
    edge = np.array([2 ** 53, -2 ** 53, 7], dtype=np.int64)
    out = as_float_array(edge, "n")
    assert out.dtype == np.float64 and [int(v) for v in out] == [2 ** 53, -2 ** 53, 7]
    np.testing.assert_array_equal(as_float_array(np.array([3, 250], dtype=np.uint8), "n"), [3.0, 250.0])
    for bad in (np.array([2 ** 53 + 1]), np.array([-2 ** 53 - 1]), np.array([2 ** 64 - 1], dtype=np.uint64)):
        _raises_naming(ValueError, lambda: as_float_array(bad, "n"), "n holds integers of magnitude above 2**53")


def test_as_float_array_shape_checks():
    a = np.zeros((2, 3))
    assert as_float_array(a, "a", ndim=2, shape=(2, None)) is not None
    _raises_naming(ValueError, lambda: as_float_array(a, "a", ndim=1), "a must be a 1-D array, got shape (2, 3)")
    _raises_naming(ValueError, lambda: as_float_array(a, "a", shape=(None, 2)),
                   "a must have shape (n, 2), got shape (2, 3)")
    _raises_naming(ValueError, lambda: as_float_array(a, "a", shape=(6,)), "a must have shape (6,), got shape (2, 3)")
    # finite=False leaves the NaN/inf check to the caller
    assert np.isnan(as_float_array([np.nan], "a", finite=False)).all()


def test_as_float_array_names_the_expected_value_in_its_type_errors():
    _raises_naming(TypeError, lambda: as_float_array(None, "w", what="a weight vector"),
                   "w must be a weight vector, got NoneType")
    _raises_naming(TypeError, lambda: as_float_array([fractions.Fraction(1, 3)], "w"),
                   "w must be a real array, got dtype object")


# ---------------------------------------------------------------------------------------------------------------------
# scalars and integers


@pytest.mark.parametrize("good, expected", [(2, 2.0), (-0.5, -0.5), (np.float32(0.25), 0.25), (np.int64(7), 7.0),
                                            (np.array(1.5), 1.5), (fractions.Fraction(1, 4), 0.25)])
def test_as_real_scalar_accepts(good, expected):
    out = as_real_scalar(good, "s")
    assert type(out) is float and out == expected


@pytest.mark.parametrize("bad", [True, np.bool_(False), 1j, "1", None, [1.0], np.array([1.0]), np.array(True)])
def test_as_real_scalar_rejects_non_reals(bad):
    _raises_naming(TypeError, lambda: as_real_scalar(bad, "s"), "s must be a real scalar")


@pytest.mark.parametrize("bad, flags, message", [
    (np.nan, {}, "s must be finite"), (np.inf, {}, "s must be finite"),
    (-np.inf, {"positive": True}, "s must be finite"),
    (0.0, {"positive": True}, "s must be > 0"), (-1e-300, {"nonnegative": True}, "s must be >= 0"),
    (0, {"nonzero": True}, "s must be nonzero")])
def test_as_real_scalar_rejects_out_of_range(bad, flags, message):
    _raises_naming(ValueError, lambda: as_real_scalar(bad, "s", **flags), message)


def test_as_real_scalar_range_flags_accept_the_boundary_they_allow():
    assert as_real_scalar(0.0, "s", nonnegative=True) == 0.0
    assert as_real_scalar(-2.0, "s", nonzero=True) == -2.0
    assert as_real_scalar(5e-324, "s", positive=True) == 5e-324


@pytest.mark.parametrize("good", [1, 7, np.int32(3), np.uint8(2)])
def test_as_positive_integer_accepts(good):
    out = as_positive_integer(good, "n")
    assert type(out) is int and out == int(good)


@pytest.mark.parametrize("bad", [True, 2.0, "3", None, np.array(2), np.float64(1.0)])
def test_as_positive_integer_rejects_non_integers(bad):
    _raises_naming(TypeError, lambda: as_positive_integer(bad, "n"), "n must be an integer")


@pytest.mark.parametrize("bad", [0, -3, np.int64(0)])
def test_as_positive_integer_rejects_below_one(bad):
    _raises_naming(ValueError, lambda: as_positive_integer(bad, "n"), "n must be >= 1")


def test_as_coordinate():
    assert as_coordinate(0, 3) == 0 and as_coordinate(np.int64(2), 3, "j") == 2
    _raises_naming(TypeError, lambda: as_coordinate(1.0, 3, "j"), "j must be an integer coordinate index")
    _raises_naming(TypeError, lambda: as_coordinate(False, 3, "j"), "j must be an integer coordinate index")
    _raises_naming(ValueError, lambda: as_coordinate(3, 3, "j"), "j must satisfy 0 <= j < d = 3")
    _raises_naming(ValueError, lambda: as_coordinate(-1, 3, "j"), "j must satisfy 0 <= j < d = 3")


# ---------------------------------------------------------------------------------------------------------------------
# vectors and 1-D point sets


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.int16]), st.integers(1, 6),
                  elements=st.integers(-1000, 1000)))
def test_as_vector_and_as_points_1d_return_the_same_float64_values(a):
    if a.dtype == np.float32:  # the dtype policy: another float precision is refused, never silently changed
        for check in (lambda: as_vector(a, a.size, "v"), lambda: as_vector(list(a), None, "v"),
                      lambda: as_points_1d(a, "v")):
            _raises_naming(TypeError, check, "v has dtype float32")
        return
    # independent route: NumPy's own float64 conversion of the same values
    expected = a.astype(np.float64)
    for out in (as_vector(a, a.size, "v"), as_vector(list(a), None, "v"), as_points_1d(a, "v")):
        assert out.dtype == np.float64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("check", [lambda v, **kw: as_vector(v, None, "v", **kw),
                                   lambda v, **kw: as_points_1d(v, "v", **kw)])
def test_copy_and_read_only_never_touch_the_callers_array(check):
    a = np.array([1.0, 2.0, 3.0])
    assert np.shares_memory(check(a), a)  # default: no copy when none is needed
    c = check(a, copy=True)
    assert not np.shares_memory(c, a) and c.flags.writeable
    r = check(a, read_only=True)
    assert not np.shares_memory(r, a) and not r.flags.writeable
    assert a.flags.writeable  # the caller's array is never frozen


@pytest.mark.parametrize("bad", ["abc", None, [1j, 2.0], [True, False], [fractions.Fraction(1, 2)]])
def test_as_vector_rejects_non_real(bad):
    _raises_naming(TypeError, lambda: as_vector(bad, None, "v"), "v must be a real vector")


@pytest.mark.parametrize("bad, d", [([], None), (np.zeros((2, 1)), None), (np.zeros(3), 2), (1.0, None), (1.0, 1)])
def test_as_vector_rejects_wrong_shapes(bad, d):
    _raises_naming(ValueError, lambda: as_vector(bad, d, "v"), "v must have shape")


def test_as_vector_rejects_non_finite():
    _raises_naming(ValueError, lambda: as_vector([0.0, np.inf], 2, "v"), "v has a non-finite entry")


@pytest.mark.parametrize("bad", ["abc", None, [1j], [True]])
def test_as_points_1d_rejects_non_real(bad):
    _raises_naming(TypeError, lambda: as_points_1d(bad, "x"), "x must be a real 1-D array")


@pytest.mark.parametrize("bad", [[], 1.0, np.zeros((3, 1))])
def test_as_points_1d_rejects_wrong_shapes(bad):
    _raises_naming(ValueError, lambda: as_points_1d(bad, "x"), "x must be a non-empty 1-D array")


def test_as_points_1d_rejects_non_finite():
    _raises_naming(ValueError, lambda: as_points_1d([0.0, 1.0, np.nan], "x"), "x has a non-finite entry")


# ---------------------------------------------------------------------------------------------------------------------
# symmetric matrices


def test_as_symmetric_matrix_accepts_and_symmetrises_exactly():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((3, 3))
    S = B @ B.T + 3.0 * np.eye(3)
    # a perturbation of relative size 1e-14 is within the 1e-12 symmetry tolerance and is averaged away
    noisy = S + 1e-14 * np.max(np.abs(S)) * np.triu(np.ones((3, 3)), 1)
    out = as_symmetric_matrix(noisy, 3, "S", positive_definite=True)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, out.T)
    np.testing.assert_array_equal(out, 0.5 * (noisy + noisy.T))  # independent route: the formula itself
    assert as_symmetric_matrix([[1, 0], [0, 0]], None, "S", positive_semidefinite=True).dtype == np.float64


def test_as_symmetric_matrix_rejections():
    _raises_naming(TypeError, lambda: as_symmetric_matrix([[1j]], None, "S"), "S must be a real matrix")
    _raises_naming(TypeError, lambda: as_symmetric_matrix(None, None, "S"), "S must be a real matrix")
    _raises_naming(ValueError, lambda: as_symmetric_matrix(np.ones((2, 3)), None, "S"), "S must be a square matrix")
    _raises_naming(ValueError, lambda: as_symmetric_matrix(np.eye(2), 3, "S"),
                   "S must be a square matrix of shape (3, 3)")
    _raises_naming(ValueError, lambda: as_symmetric_matrix(np.zeros((0, 0)), None, "S"), "S must be a square matrix")
    _raises_naming(ValueError, lambda: as_symmetric_matrix([[1.0, np.nan], [np.nan, 1.0]], 2, "S"),
                   "S has a non-finite entry")
    _raises_naming(ValueError, lambda: as_symmetric_matrix([[1.0, 2.0], [0.0, 1.0]], 2, "S"), "S must be symmetric")
    # eigenvalues 1 and -1: neither SPD nor PSD
    indefinite = [[0.0, 1.0], [1.0, 0.0]]
    _raises_naming(ValueError, lambda: as_symmetric_matrix(indefinite, 2, "S", positive_definite=True),
                   "S must be symmetric positive definite")
    _raises_naming(ValueError, lambda: as_symmetric_matrix(indefinite, 2, "S", positive_semidefinite=True),
                   "S must be positive semidefinite")


def test_as_real_scalar_refuses_integers_float64_cannot_hold_exactly():
    # 2**60 is a float64 exactly (a power of two); 2**60 + 1 is not and would round silently to 2**60
    assert as_real_scalar(2 ** 60, "T") == float(2 ** 60)
    assert as_real_scalar(np.int64(2 ** 53), "T") == float(2 ** 53)
    with pytest.raises(ValueError, match=r"^T = 1152921504606846977 is an integer that float64 cannot hold"):
        as_real_scalar(2 ** 60 + 1, "T")
    with pytest.raises(ValueError, match="^N_steps"):
        as_real_scalar(np.int64(2 ** 53 + 1), "N_steps")
