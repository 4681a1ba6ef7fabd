#!/usr/bin/env python3
"""Fit the polynomial coefficients used by Sources/KosmosTensor/FastMath.swift.

Run:  python3 scripts/fit_fastmath.py          (about ten seconds; needs numpy, mpmath, scipy)

Every coefficient set is a near-minimax fit with a *weight* that turns the polynomial's error into
the error of the final float32 function, relative to that function's value:

  * Reference values come from mpmath at 40 significant digits on 3000 Chebyshev-distributed points.
  * The weighted minimax problem  min_c max_i |w_i (sum_k c_k v_i^k - g_i)|  is solved with Lawson's
    algorithm (iteratively reweighted least squares, which converges to the minimax solution).
  * The coefficients are then rounded to float32 one at a time, lowest order first; after each
    rounding the remaining (higher-order) coefficients are refitted, so they absorb the rounding.
  * Finally the Swift algorithms are emulated in numpy float32 arithmetic (IEEE single, no FMA --
    the same operations in the same order as the Swift code, which targets baseline x86-64 without
    FMA) and compared with float64 libm rounded to float32 on a large sample of inputs.

The script prints the constants as Swift hex-float literals for the `_FastMathConst` enum. The
emulation here is a quick check; the Swift functions themselves were checked over all 2^32 float
inputs (max error 1 ulp for exp, erf and tanh, 2 ulp for sigmoid).
"""
import numpy as np
import mpmath as mpm
import scipy.special as sps

mpm.mp.dps = 40
f32 = np.float32
ULP1 = 2.0 ** -24  # half the float32 spacing at 1: relative unit used for the fit errors below


# ----------------------------------------------------------------------------------------------
# fitting machinery
# ----------------------------------------------------------------------------------------------
def cheb_nodes(a, b, n=3000):
    k = np.arange(n)
    return np.sort(0.5 * (a + b) + 0.5 * (b - a) * np.cos(np.pi * (k + 0.5) / n))


def lawson(V, g, w, iters=400):
    """Weighted minimax fit of g by the columns of V (Lawson's IRLS). Returns (coeffs, max error)."""
    scale = np.max(np.abs(V), axis=0)
    scale[scale == 0] = 1.0
    Vs = V / scale
    lam = np.full(len(g), 1.0 / len(g))
    for _ in range(iters):
        s = np.sqrt(lam) * w
        c, *_ = np.linalg.lstsq(Vs * s[:, None], g * s, rcond=None)
        e = np.abs(w * (Vs @ c - g))
        lam = lam * e
        lam /= lam.sum()
    return c / scale, e.max()


def fit_float32(v, g, w, deg, name):
    """Near-minimax polynomial sum_{k<=deg} c_k v^k for g, with float32 coefficients."""
    fixed = {}
    for k in range(deg + 1):
        free = list(range(k, deg + 1))
        rhs = g - sum(fixed[j] * v ** j for j in fixed)
        c, err = lawson(np.stack([v ** j for j in free], axis=1), rhs, w)
        if k == 0:
            unrounded = err
        fixed[k] = float(f32(c[0]))
    coeffs = [fixed[k] for k in range(deg + 1)]
    err = np.max(np.abs(w * (g - sum(c * v ** k for k, c in enumerate(coeffs)))))
    print(f"{name}: degree {deg}, weighted max error {unrounded / ULP1:.4f} (exact coeffs), "
          f"{err / ULP1:.4f} (float32 coeffs), in units of 2^-24 relative")
    return coeffs


def mp_vals(fn, xs):
    return np.array([float(fn(mpm.mpf(float(x)))) for x in xs])


# ----------------------------------------------------------------------------------------------
# exp:  x = n*ln2 + r, |r| <= ln2/2;  exp(r) = 1 + r + r^2 * Q(r), Q of degree 4
# ----------------------------------------------------------------------------------------------
LN2 = mpm.log(2)
# ln2 rounded to 16 significant bits: n*LN2_HI is exact in float32 for |n| <= 255.
LN2_HI = float(mpm.nint(LN2 * 2 ** 16) / 2 ** 16)
LN2_LO = float(f32(float(LN2 - LN2_HI)))
assert float(f32(LN2_HI)) == LN2_HI
EXP_HI = 89.0    # exp(88.7228) overflows already; clamping keeps n <= 128
EXP_LO = -176.0  # n = -254 here, so both scale factors are exactly 0 (see emu_exp)
R_MAX = float(LN2 / 2) * 1.001  # |r| can exceed ln2/2 by a few ulps of rounding

r = cheb_nodes(-R_MAX, R_MAX)
g = mp_vals(lambda t: (mpm.exp(t) - 1 - t) / t ** 2, r)
EXP_Q = fit_float32(r, g, r ** 2 / np.exp(r), 4, "exp  Q(r) on |r| <= ln2/2")

# ----------------------------------------------------------------------------------------------
# erf
#   |x| <  ERF_SPLIT : erf(x) = x + x * S(x^2)             (S(0) ~ 2/sqrt(pi) - 1 keeps tiny x exact)
#   |x| >= ERF_SPLIT : erf(x) = 1 - exp(L(|x| - ERF_SPLIT)),  L ~ log(erfc), expanded at the left
#                      end so Horner sums terms of one sign (centring it cost 2-4 ulp of cancellation)
#   |x| >= ERF_ONE   : |x| is clamped to ERF_ONE (first float whose correctly rounded erf is 1);
#                      the formula above must give exactly 1 there (asserted in __main__)
# The L fit is weighted by erfc/erf: an error d in L is a relative error d in erfc, i.e. an
# absolute error d*erfc in erf, so the fit only has to be tight where erfc is not negligible.
# ----------------------------------------------------------------------------------------------
ERF_SPLIT = 0.75
x_one = mpm.findroot(lambda t: mpm.erfc(t) - mpm.mpf(2) ** -25, 3.9)  # erf(x) rounds to 1 beyond
ERF_ONE = float(f32(float(x_one)))
if ERF_ONE < x_one:
    ERF_ONE = float(np.nextafter(f32(ERF_ONE), f32(10)))

x = cheb_nodes(1e-7, ERF_SPLIT)
g = mp_vals(lambda t: mpm.erf(t) / t - 1, x)
ERF_S = fit_float32(x * x, g, x / mp_vals(mpm.erf, x), 5, "erf  S(x^2) on [0, 0.75]")

x = cheb_nodes(ERF_SPLIT, ERF_ONE)
g = mp_vals(lambda t: mpm.log(mpm.erfc(t)), x)
ERF_L = fit_float32(x - ERF_SPLIT, g, mp_vals(lambda t: mpm.erfc(t) / mpm.erf(t), x), 6,
                    "erf  L(x - 0.75) on [0.75, ERF_ONE]")

# ----------------------------------------------------------------------------------------------
# tanh:  |x| < TANH_SPLIT: tanh(x) = x + x^3 * T(x^2);  otherwise 1 - 2/(1 + exp(2|x|))
# (the exp form loses relative accuracy by cancellation below ~0.6; at 0.75 it is ~1 ulp)
# ----------------------------------------------------------------------------------------------
TANH_SPLIT = 0.75
TANH_CLAMP = 10.0  # tanh(x) rounds to 1 for x > 9.01; clamping keeps exp(2x) far from overflow
x = cheb_nodes(1e-4, TANH_SPLIT)
g = mp_vals(lambda t: (mpm.tanh(t) / t - 1) / t ** 2, x)
TANH_T = fit_float32(x * x, g, x ** 3 / np.tanh(x), 5, "tanh T(x^2) on [0, 0.75]")


# ----------------------------------------------------------------------------------------------
# float32 emulation of the Swift code
# ----------------------------------------------------------------------------------------------
def _bits(v):
    return v.view(np.int32)


def _float(i):
    return i.astype(np.int32).view(f32)


def _horner(v, C):
    q = np.full_like(v, f32(C[-1]))
    for c in C[-2::-1]:
        q = q * v + f32(c)
    return q


LOG2E = float(f32(float(1 / LN2)))
MAGIC = f32(12582912.0)  # 1.5 * 2^23: adding it rounds |v| < 2^22 to an integer (ties to even)


def _exp_poly(x):
    """(exp(r), t) with x = n*ln2 + r; n sits in the low bits of t."""
    t = x * f32(LOG2E) + MAGIC
    nf = t - MAGIC
    r = (x - nf * f32(LN2_HI)) - nf * f32(LN2_LO)
    r2 = r * r
    a = r * f32(EXP_Q[1]) + f32(EXP_Q[0])          # Estrin: shorter dependency chains
    b = r * f32(EXP_Q[3]) + f32(EXP_Q[2])
    b = r2 * f32(EXP_Q[4]) + b
    q = r2 * b + a
    return f32(1) + (r + r2 * q), t


def emu_exp(x):
    xc = np.where(x > f32(EXP_HI), f32(EXP_HI), x).astype(f32)
    xc = np.where(xc < f32(EXP_LO), f32(EXP_LO), xc).astype(f32)
    p, t = _exp_poly(xc)
    v = _bits(t) - (_bits(np.array([MAGIC]))[0] - 254)  # n + 254 >= 0
    h = v >> 1                                          # biased exponent of 2^floor(n/2)
    with np.errstate(over="ignore", under="ignore"):
        return (p * _float(h << 23)) * _float((v - h) << 23)


def emu_exp_core(x):  # no clamps, result in the normal range: add n to p's exponent field
    p, t = _exp_poly(x)
    return _float(_bits(p) + (_bits(t) << 23))


def emu_erf(x):
    a = np.abs(x)
    small = a + a * _horner(a * a, ERF_S)
    al = np.where(a < f32(ERF_SPLIT), f32(ERF_SPLIT), a).astype(f32)
    al = np.where(al > f32(ERF_ONE), f32(ERF_ONE), al).astype(f32)  # at ERF_ONE the result is 1
    y = f32(1) - emu_exp_core(_horner(al - f32(ERF_SPLIT), ERF_L))
    y = np.where(a >= f32(ERF_SPLIT), y, small).astype(f32)
    return np.copysign(y, x)


def emu_tanh(x):
    a = np.abs(x)
    s = a * a
    small = a + (a * s) * _horner(s, TANH_T)
    al = np.where(a > f32(TANH_CLAMP), f32(TANH_CLAMP), a).astype(f32)
    y = f32(1) - f32(2) / (f32(1) + emu_exp_core(al + al))
    y = np.where(a >= f32(TANH_SPLIT), y, small).astype(f32)
    return np.copysign(y, x)


def ulp_distance(a, b):
    ia = a.view(np.int32).astype(np.int64)
    ib = b.view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def check(name, fn, ref64, lo_bits, hi_bits, stride):
    xs = np.arange(lo_bits, hi_bits, stride, dtype=np.uint32).view(f32)
    y = fn(xs)
    with np.errstate(over="ignore"):
        ref = ref64(xs.astype(np.float64)).astype(f32)
    d = ulp_distance(y, ref)
    i = int(d.argmax())
    print(f"  {name:5s} {len(xs):9d} inputs: max {d.max()} ulp from correctly rounded "
          f"(at x={xs[i]!r}), {np.count_nonzero(d):d} not correctly rounded")


def swift_hex(v):
    """Exact Swift hex-float literal, e.g. 0.75 -> 0x1.8p-1."""
    mant, exp = float(v).hex().split("p")
    return f"{mant.rstrip('0').rstrip('.')}p{int(exp)}"


def emit(name, value):
    print(f"    static let {name}: Float = {swift_hex(value)}  // {float(f32(value)):.9g}")


if __name__ == "__main__":
    # fastErf clamps |x| to ERF_ONE and relies on 1 - exp(L) rounding to exactly 1 there.
    e_one = emu_exp_core(_horner(np.array([ERF_ONE - ERF_SPLIT], dtype=f32), ERF_L))[0]
    assert e_one < 2.0 ** -25, "exp(L(ERF_ONE)) must be below 2^-25 so that erf saturates at 1"
    print(f"\nerf at ERF_ONE = {ERF_ONE!r}: exp(L) = {e_one / 2.0 ** -25:.4f} * 2^-25, result 1")
    print("\nfloat32 emulation vs float64 libm rounded to float32 (strided sweep over bit patterns):")
    check("exp", emu_exp, np.exp, 0x00000000, 0x43000000, 97)     # [0, 128)
    check("exp", emu_exp, np.exp, 0x80000000, 0xC3480000, 97)     # (-200, -0]
    check("erf", emu_erf, sps.erf, 0x00000000, 0x40900000, 97)    # [0, 4.5)
    check("tanh", emu_tanh, np.tanh, 0x00000000, 0x41300000, 97)  # [0, 11)

    print("\n// ---- generated by scripts/fit_fastmath.py ----")
    emit("log2e", LOG2E)
    emit("ln2Hi", LN2_HI)
    emit("ln2Lo", LN2_LO)
    for k, c in enumerate(EXP_Q):
        emit(f"expQ{k}", c)
    emit("erfSplit", ERF_SPLIT)
    emit("erfOne", ERF_ONE)
    for k, c in enumerate(ERF_S):
        emit(f"erfS{k}", c)
    for k, c in enumerate(ERF_L):
        emit(f"erfL{k}", c)
    emit("tanhSplit", TANH_SPLIT)
    emit("tanhClamp", TANH_CLAMP)
    for k, c in enumerate(TANH_T):
        emit(f"tanhT{k}", c)
