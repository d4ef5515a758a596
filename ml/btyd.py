"""Buy-till-you-die (BTYD) models: BG/NBD, Pareto/NBD and the Gamma-Gamma spend model.

In a non-contractual retail setting nobody tells us when a customer stops buying. These
models infer it from each customer's repeat-purchase history, summarised as

* ``x``   -- number of repeat purchases: purchase occasions after the first one (distinct
  days with a purchase, minus 1);
* ``t_x`` -- time of the last purchase, measured from the first purchase;
* ``T``   -- time from the first purchase to the end of the calibration period.

All three are per-customer numpy arrays in one time unit of your choice (weeks are the
usual one); ``t`` horizons are in the same unit. Scale parameters (``alpha``, ``beta``) are
in that unit too, so changing the unit rescales them and nothing else; shape parameters are
dimensionless. ``0 <= t_x <= T``; ``x`` is a whole number; ``x == 0`` requires
``t_x == 0``. ``x > 0`` with ``t_x == 0`` is *accepted*: with a coarse time unit all repeat
purchases can fall into the first period, and both likelihoods stay finite there. Anything
else (negative, non-finite, ``t_x > T``, fractional ``x``) raises ``ValueError`` naming the
problem.

Models
------
BG/NBD (Fader, Hardie & Lee 2005a). While alive, a customer buys as a Poisson process with
rate ``lambda``; after every *repeat* purchase he drops out for good with probability ``p``.
``lambda ~ Gamma(shape=r, rate=alpha)`` and ``p ~ Beta(a, b)`` across customers,
independently. Dropping out only happens at a purchase, so a customer with ``x == 0`` is
alive with probability 1 -- the well-known quirk of the model.

Pareto/NBD (Schmittlein, Morrison & Colombo 1987). Same purchase process, but the lifetime
is exponential with rate ``mu ~ Gamma(shape=s, rate=beta)``, independent of ``lambda``:
dropout can happen at any time, so long-silent one-time buyers are probably gone. The
likelihood, P(alive) and conditional expectation follow Fader & Hardie (2005b); the
Gaussian hypergeometric function there is evaluated as ``2F1(1, b; c; z)`` (an Euler
transform of the note's form, bounded where the note's overflows), with scipy, and
replaced by a log-space series + Gauss-Legendre quadrature of the defining integral where
scipy is inaccurate (``z`` close to 1, i.e. ``alpha`` and ``beta`` far apart, or large
``x``).

Gamma-Gamma (Fader, Hardie & Lee 2005c). The value of each transaction is
``Gamma(shape=p, rate=nu)`` with ``nu ~ Gamma(shape=q, rate=v)`` across customers, so a
customer's mean spend ``m`` over ``x`` transactions shrinks towards the population mean
``p v / (q - 1)`` (finite only for ``q > 1``) the fewer transactions he has. It assumes spend
is independent of the purchase process: check the correlation between ``x`` and ``m``
before combining it with BG/NBD or Pareto/NBD into a CLV. Fit it on customers with
``x > 0`` and the mean value of those ``x`` repeat purchases.

Fitting is maximum likelihood on log-parameters with L-BFGS-B and analytic gradients
(for Pareto/NBD, scipy's 2F1 is differentiated in its parameters by central differences;
the series/quadrature fallback analytically). Identical rows are collapsed into weights
first, everything that depends on (x, t_x) or (x, T) only is computed once per distinct
pair, and ``weights`` lets callers pass already-aggregated rows: a million customers with
daily-resolution histories fit in about 1-2.5 s of CPU. Times (and spend) are divided by
their mean while fitting, so the optimiser works on O(1) parameters whatever the unit.
A fit that does not converge, or whose parameters run off towards 0 or infinity (beyond
``[1e-6, 1e6]`` in those units: the data do not identify them -- e.g. nearly identical
spend for everybody, or no sign of dropout at all), raises ``ValueError`` rather than
returning a model that looks valid. Along a flat ridge the optimiser may instead stop at
large but finite values: a Pareto/NBD fit with s and beta both huge says that everybody
has the same dropout rate s / beta, and only that ratio is meaningful.

References
----------
* Fader, Hardie & Lee (2005a), "'Counting Your Customers' the Easy Way: An Alternative to
  the Pareto/NBD Model", Marketing Science 24(2), 275-284.
* Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who Are They and What
  Will They Do Next?", Management Science 33(1), 1-24.
* Fader & Hardie (2005b), "A Note on Deriving the Pareto/NBD Model and Related
  Expressions", http://brucehardie.com/notes/009/.
* Fader, Hardie & Lee (2005c), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", Journal of Marketing Research 42(4), 415-430; and Fader & Hardie (2013),
  "The Gamma-Gamma Model of Monetary Value", http://brucehardie.com/notes/025/.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

__all__ = ["BgNbd", "GammaGamma", "ParetoNbd"]

FloatArray = NDArray[np.float64]

# Parameters are fitted with times (and spend) divided by their mean, so every parameter is
# O(1) in those units whatever the caller's unit. The optimiser searches [1e-8, 1e8] on the
# log scale; one that ends beyond [1e-6, 1e6] is running off to 0 or infinity: unidentified.
_LOG_LO, _LOG_HI = math.log(1e-8), math.log(1e8)
_LOG_SANE = math.log(1e6)
# A gradient of the mean log-likelihood per customer below this is an optimum: it moves the
# parameters by ~1e-5 relative, far below their sampling error.
_FLAT = 1e-5
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
_GL_PANELS = 64
_CHUNK = 1024  # elements per quadrature batch: grids of ~0.1-0.5M floats stay in cache


# --------------------------------------------------------------------------- input checks


def _float_array(name: str, value: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _fail_where(mask: NDArray[np.bool_], message: str) -> None:
    """Raise with the number of offending customers and the first one's (flat) index."""
    if np.any(mask):
        first = int(np.flatnonzero(mask)[0])
        raise ValueError(f"{message} ({int(mask.sum())} customer(s), first at index {first})")


def _histories(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, same_shape: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validated (x, t_x, T); broadcast together unless ``same_shape`` (fitting) is asked."""
    xa, ta, Ta = _float_array("x", x), _float_array("t_x", t_x), _float_array("T", T)
    if same_shape:
        if not (xa.ndim == 1 and xa.shape == ta.shape == Ta.shape):
            raise ValueError(
                "x, t_x and T must be 1-D arrays of the same length, got shapes "
                f"{xa.shape}, {ta.shape}, {Ta.shape}"
            )
        if xa.size == 0:
            raise ValueError("no customers to fit on (empty arrays)")
    else:
        try:
            xa, ta, Ta = np.broadcast_arrays(xa, ta, Ta)
        except ValueError as exc:
            raise ValueError(
                f"x, t_x and T have incompatible shapes {xa.shape}, {ta.shape}, {Ta.shape}"
            ) from exc
    _fail_where(xa < 0, "x must be >= 0 (number of repeat purchases)")
    _fail_where(xa != np.floor(xa), "x must be a whole number of repeat purchases")
    _fail_where(ta < 0, "t_x must be >= 0 (time of the last purchase since the first)")
    _fail_where(Ta < 0, "T must be >= 0 (time from the first purchase to calibration end)")
    _fail_where(ta > Ta, "t_x must be <= T: last purchase after the end of the calibration period")
    _fail_where((xa == 0) & (ta != 0), "t_x must be 0 where x == 0 (no repeat purchase)")
    return xa, ta, Ta


def _weights(weights: ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = _float_array("weights", weights)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) like x, got {w.shape}")
    _fail_where(w < 0, "weights must be >= 0")
    if not w.sum() > 0:
        raise ValueError("weights sum to zero: nothing to fit")
    return w


def _horizon(t: ArrayLike) -> FloatArray:
    ta = _float_array("t", t)
    _fail_where(ta < 0, "t (prediction horizon) must be >= 0")
    return ta


def _collapse(
    columns: list[FloatArray], w: FloatArray
) -> tuple[list[FloatArray], FloatArray, NDArray[np.intp]]:
    """Distinct rows of ``columns`` with their summed weights, and each input row's position
    among them (-1 for zero-weight rows, which are dropped)."""
    keep = np.flatnonzero(w > 0)
    cols = [c[keep] for c in columns]
    order = np.lexsort(cols[::-1])
    cols = [c[order] for c in cols]
    new = np.ones(order.size, dtype=bool)
    if order.size > 1:
        new[1:] = np.any([c[1:] != c[:-1] for c in cols], axis=0)
    group = np.cumsum(new) - 1
    position = np.full(w.size, -1, dtype=np.intp)
    position[keep[order]] = group
    return [c[new] for c in cols], np.bincount(group, weights=w[keep][order]), position


def _by_value(values: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Distinct values with their summed weights: terms that depend on x only are summed here."""
    uniq, inv = np.unique(values, return_inverse=True)
    return uniq, np.bincount(inv, weights=w, minlength=uniq.size)


class _Pairs:
    """Distinct (x, tau) pairs of a set of rows, with each row's position among them.

    Everything that depends on a customer's x and one of his times only (t_x or T) is
    computed once per pair: there are far fewer pairs than customers, because T takes one
    value per acquisition day and x is a small integer.
    """

    def __init__(self, x: FloatArray, tau: FloatArray) -> None:
        (self.x, self.tau), _, self.at = _collapse([x, tau], np.ones(x.size))

    def total(self, row_values: FloatArray) -> FloatArray:
        """Sum of per-row values into their pairs."""
        return np.bincount(self.at, weights=row_values, minlength=self.x.size)


def _on_distinct(
    fun: Callable[..., FloatArray], *columns: FloatArray, min_size: int = 50_000
) -> FloatArray:
    """``fun`` evaluated once per distinct row of ``columns`` (broadcast), scattered back.

    Used where ``fun`` is expensive (2F1 evaluations) and inputs repeat a lot; small inputs
    are evaluated directly, where sorting would cost more than it saves.
    """
    cols = [np.asarray(c, dtype=float) for c in np.broadcast_arrays(*columns)]
    shape = cols[0].shape
    flat = [c.ravel() for c in cols]
    if flat[0].size < min_size:
        return np.asarray(fun(*flat), dtype=float).reshape(shape)
    distinct, _, at = _collapse(flat, np.ones(flat[0].size))
    return np.asarray(fun(*distinct), dtype=float)[at].reshape(shape)


def _softplus_sigmoid(d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """log(1 + e^d) and 1 / (1 + e^-d), without overflow and without the subnormal
    intermediates that make np.exp/np.logaddexp ~30x slower."""
    e = np.exp(np.maximum(-np.abs(d), -700.0))
    return np.maximum(d, 0.0) + np.log1p(e), np.where(d >= 0, 1.0, e) / (1.0 + e)


# --------------------------------------------------------------------------- optimiser


def _minimise(
    name: str,
    params: tuple[str, ...],
    objective: Callable[[FloatArray], tuple[float, FloatArray]],
    start: FloatArray,
    *,
    units: FloatArray,
) -> FloatArray:
    """Minimise (value, gradient) on log-parameters of the normalised problem; raise
    ValueError unless it converged to finite values. Returns the parameters times ``units``
    (the normalisation)."""

    def check_run_off(theta: FloatArray) -> None:
        gone = [
            (p, v, u) for p, v, u in zip(params, theta, units, strict=True) if abs(v) > _LOG_SANE
        ]
        if not gone:
            return
        values = ", ".join(f"{p}={math.exp(v) * u:.3g}" for p, v, u in gone)
        towards = "infinity" if gone[0][1] > 0 else "0"
        if len(gone) == 1:
            raise ValueError(
                f"{name} fit: parameter {gone[0][0]} ran off towards {towards} ({values}); "
                "the data do not identify it"
            )
        raise ValueError(
            f"{name} fit: parameters {', '.join(p for p, _, _ in gone)} ran off together "
            f"({values}): the data identify their ratio, not each -- the customers look "
            "homogeneous in that respect (e.g. the same dropout rate for everybody)"
        )

    def stop_when_running_off(intermediate_result: optimize.OptimizeResult) -> None:
        # walking down a flat valley towards 0 or infinity is slow and pointless
        if np.any(np.abs(intermediate_result.x) > _LOG_SANE):
            raise StopIteration

    theta0 = np.clip(np.log(start), -_LOG_SANE, _LOG_SANE)
    bounds = [(_LOG_LO, _LOG_HI)] * len(params)
    with np.errstate(over="ignore", under="ignore"):
        res = optimize.minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            callback=stop_when_running_off,
            options={"maxiter": 500, "ftol": 1e-12, "gtol": 0.1 * _FLAT},
        )
        check_run_off(res.x)
        # L-BFGS-B can end on "ABNORMAL_TERMINATION_IN_LNSRCH" at the optimum, when the
        # remaining decrease is below the objective's rounding noise: accept that when the
        # gradient (of the mean log-likelihood per customer) is negligible; otherwise try a
        # short derivative-free polish. Anything else is a failure.
        if not res.success and res.status == 2 and np.isfinite(res.fun):
            theta = np.asarray(res.x, dtype=float)
            if np.max(np.abs(objective(theta)[1])) > _FLAT:
                polish = optimize.minimize(
                    lambda th: objective(th)[0],
                    theta,
                    method="Nelder-Mead",
                    bounds=bounds,
                    options={"maxfev": 100 * len(params), "xatol": 1e-7, "fatol": 1e-12},
                )
                check_run_off(polish.x)
                if polish.fun <= res.fun:
                    res.x, res.fun = polish.x, polish.fun
                theta = np.asarray(res.x, dtype=float)
            res.success = bool(np.max(np.abs(objective(theta)[1])) <= _FLAT)
        if not (res.success and np.isfinite(res.fun)):
            raise ValueError(f"{name} fit did not converge: {res.message}")
    return np.exp(np.asarray(res.x, dtype=float)) * units


def _time_unit(x: FloatArray, T: FloatArray, w: FloatArray) -> float:
    """Mean observation time, the unit times are fitted in; checks there is data to fit."""
    if not w @ x > 0:
        raise ValueError("no repeat purchases in the data (all x == 0): cannot fit")
    if not w @ T > 0:
        raise ValueError("all T == 0: no observation time to fit on")
    return float(w @ T / w.sum())


# --------------------------------------------------------------------------- numerics


def _log_sum_exp(terms: FloatArray) -> FloatArray:
    """log(sum(exp(terms), axis=0)), -inf for all -inf (plain numpy: scipy's has overhead)."""
    top = np.max(terms, axis=0)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(terms - safe), axis=0))


def _log_gauss_legendre(
    log_f: Callable[[FloatArray], FloatArray], lo: FloatArray, hi: FloatArray
) -> FloatArray:
    """log of the integral of exp(log_f) over [lo, hi] (elementwise): composite 8-point
    Gauss-Legendre on _GL_PANELS equal panels, enough to ~1e-12 where the integrand spans
    at most ~120 e-folds (or features ~1 wide over a range of ~32)."""
    u, log_w = _gauss_legendre_grid(lo, hi, _GL_PANELS)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _log_sum_exp(log_f(u) + log_w)


def _chunked(fun: Callable[..., FloatArray], *arrays: FloatArray) -> FloatArray:
    """``fun`` over the arrays in chunks (bounding the memory of quadrature grids); results
    are joined along their last axis."""
    size = arrays[0].size
    parts = [fun(*(a[start : start + _CHUNK] for a in arrays)) for start in range(0, size, _CHUNK)]
    return np.concatenate(parts, axis=-1)


def _bisect(
    fun: Callable[[FloatArray], FloatArray], lo: FloatArray, hi: FloatArray, iterations: int = 50
) -> FloatArray:
    """Root of a function that is > 0 at ``lo`` and < 0 at ``hi`` (elementwise)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = fun(mid) > 0
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi)


_LOG2 = math.log(2.0)
_EFOLDS = 46.0  # e^-46 ~ 1e-20: what is left out of the integration range is below rounding


def _k_integration_range(
    kappa: FloatArray, nm1: FloatArray, L: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Where l(u) = kappa (u - L) + (n-1) log(1 - e^-u) is within _EFOLDS of its maximum on
    [log 2, L]. For n >= 1, l is concave, with its peak at L (kappa >= 0) or where
    l' = kappa + (n-1)/(e^u - 1) = 0; for n < 1 it is convex and the whole range is kept."""

    def ell(u: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
        return kappa[mask] * (u - L[mask]) + nm1[mask] * np.log1p(-np.exp(-u))

    everyone = np.ones(L.size, dtype=bool)
    lo, hi = np.full(L.size, _LOG2), L.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        peak = np.where(kappa < 0, np.log1p(nm1 / np.maximum(-kappa, 1e-300)), L)
    peak = np.clip(peak, _LOG2, L)
    level = ell(peak, everyone) - _EFOLDS
    concave = nm1 >= 0
    cut = concave & (ell(lo, everyone) < level)
    if np.any(cut):
        lo[cut] = _bisect(lambda u: level[cut] - ell(u, cut), lo[cut], peak[cut], 30)
    cut = concave & (ell(hi, everyone) < level)
    if np.any(cut):
        hi[cut] = _bisect(lambda u: ell(u, cut) - level[cut], peak[cut], hi[cut], 30)
    return lo, hi


def _log_k_series_quad(
    P: FloatArray, kappa: FloatArray, y: FloatArray, grad: bool = False
) -> FloatArray:
    """log K by direct integration, for where scipy's 2F1 is inaccurate; with ``grad``,
    also its partial derivatives in (P, kappa, y) -- stacked as rows 0..3.

    With n = P + kappa and z = 1 - y, K = 2F1(1, P; n + 1; z) / n equals z^-n (y^kappa S + Q):
    the integral int_y^1 q^(-kappa-1) (1-q)^(n-1) dq times y^kappa, split at q = 1/2.
    S, the part q >= 1/2, is a series of positive terms (binomial expansion of q^-(kappa+1)):
    sum_k (kappa+1)_k / k! phi^(n+k) / (n+k), phi = 1 - max(y, 1/2).
    Q, the part q < 1/2, is int exp(kappa (u - L) + (n-1) log(1 - e^-u)) du over
    u = -log q in [log 2, L = -log y], by Gauss-Legendre where the integrand matters.
    The derivatives differentiate under the integral and the sum (the limits only move
    where the integrand is negligible, except u = L, whose term is explicit).
    """
    n = P + kappa
    L = -np.log(y)
    z = -np.expm1(-L)
    nm1 = n - 1.0
    m = y.size
    log_s = np.full(m, -np.inf)  # log(y^kappa S)
    log_q = np.full(m, -np.inf)  # log Q
    lo, hi = _k_integration_range(kappa, nm1, np.maximum(L, _LOG2))
    need_series = (lo <= _LOG2) | (L <= _LOG2)
    has_quad = L > _LOG2
    nodes_q: dict[
        int, tuple[NDArray[np.bool_], FloatArray, FloatArray, FloatArray, FloatArray]
    ] = {}

    if np.any(need_series):
        ks, ns, ys = kappa[need_series], n[need_series], y[need_series]
        log_phi = np.log1p(-np.maximum(ys, 0.5))
        kmax = int(min(2.0 * max(float(ks.max()), 0.0) + 120.0, 20000.0))
        k = np.arange(kmax, dtype=float)[:, None]
        terms = (
            special.gammaln(ks + 1.0 + k)
            - special.gammaln(ks + 1.0)
            - special.gammaln(k + 1.0)
            + (ns + k) * log_phi
            - np.log(ns + k)
            + ks * np.log(ys)
        )
        log_s[need_series] = _log_sum_exp(terms)

    if np.any(has_quad):
        kq, nq, Lq = kappa[has_quad], nm1[has_quad], L[has_quad]
        lo_q, hi_q = lo[has_quad], hi[has_quad]
        panels = np.where(hi_q - lo_q <= 16 * 0.35, 16, _GL_PANELS)
        for count in (16, _GL_PANELS):
            sel = panels == count
            if not np.any(sel):
                continue
            u, log_w = _gauss_legendre_grid(lo_q[sel], hi_q[sel], count)
            log1m = np.log1p(-np.exp(-u))
            ell = kq[sel] * (u - Lq[sel]) + nq[sel] * log1m + log_w
            top = np.max(ell, axis=0)
            scaled = np.exp(ell - top)  # kept: the derivatives reuse it
            log_q[np.flatnonzero(has_quad)[sel]] = top + np.log(np.sum(scaled, axis=0))
            nodes_q[count] = (sel, u, log1m, scaled, top)

    log_n = np.logaddexp(log_s, log_q)
    log_k = -n * np.log(z) + log_n
    if not grad:
        return log_k

    # derivatives of log N, N = y^kappa S + Q, in (n, kappa at fixed n, y)
    d_n, d_kappa, d_y = np.zeros(m), np.zeros(m), np.zeros(m)
    if np.any(need_series):
        weight = np.exp(terms - log_n[need_series])  # each term's share of N
        d_n[need_series] += np.sum(weight * (log_phi - 1.0 / (ns + k)), axis=0)
        digamma_gap = special.digamma(ks + 1.0 + k) - special.digamma(ks + 1.0)
        share_s = np.sum(weight, axis=0)
        d_kappa[need_series] += np.sum(weight * digamma_gap, axis=0) + share_s * np.log(ys)
        d_y[need_series] += ks * share_s / ys
        upper = ys > 0.5  # then phi = 1 - y moves with y
        d_y[need_series] -= np.where(upper, np.sum(weight * (ns + k), axis=0) / (1.0 - ys), 0.0)
    for sel, u, log1m, scaled, top in nodes_q.values():
        idx = np.flatnonzero(has_quad)[sel]
        weight = scaled * np.exp(top - log_n[idx])  # each node's share of N
        d_n[idx] += np.sum(weight * log1m, axis=0)
        d_kappa[idx] += np.sum(weight * (u - L[idx]), axis=0)
        share_q = np.sum(weight, axis=0)
        # d/dL of Q is the integrand at u = L, z^(n-1), minus kappa Q; dL/dy = -1/y
        at_top = np.exp(nm1[idx] * np.log(z[idx]) - log_n[idx])
        d_y[idx] -= (at_top - kappa[idx] * share_q) / y[idx]
    log_z = np.log(z)
    return np.stack([log_k, -log_z + d_n, -log_z + d_kappa + d_n, n / z + d_y])


def _gauss_legendre_grid(
    lo: FloatArray, hi: FloatArray, panels: int
) -> tuple[FloatArray, FloatArray]:
    """Nodes and log weights of composite 8-point Gauss-Legendre on [lo, hi], elementwise:
    arrays of shape (panels * 8, elements)."""
    width = (hi - lo) / panels
    panel = np.arange(panels)[:, None, None]
    u = lo + width * (panel + 0.5 + 0.5 * _GL_NODES[None, :, None])
    with np.errstate(divide="ignore"):
        log_w = np.broadcast_to(np.log(0.5 * width) + np.log(_GL_WEIGHTS)[None, :, None], u.shape)
    return u.reshape(-1, lo.size), log_w.reshape(-1, lo.size)


def _log_k_scipy(P: FloatArray, kappa: FloatArray, z: FloatArray) -> FloatArray:
    with np.errstate(all="ignore"):
        n = P + kappa
        return np.log(special.hyp2f1(1.0, P, n + 1.0, z)) - np.log(n)


def _log_k(
    P: FloatArray, kappa: FloatArray, y: FloatArray, z: FloatArray, *, grad: bool = False
) -> FloatArray:
    """log K, K = 2F1(1, P; P + kappa + 1; z) / (P + kappa), z = 1 - y in [0, 1); with
    ``grad``, rows [log K, d/dP, d/dkappa, d/dy].

    scipy is fast and accurate for z <= 0.99 (its derivatives: central differences); beyond
    that, or when its value breaks the bounds 1 <= 2F1 <= n / kappa, the series/quadrature
    evaluation (with analytic derivatives) takes over.
    """
    P, kappa, y, z = (
        np.asarray(v, dtype=float).ravel() for v in np.broadcast_arrays(P, kappa, y, z)
    )
    n = P + kappa
    out = np.empty((4, n.size)) if grad else np.empty((1, n.size))
    near = np.flatnonzero(y >= 0.01)  # beyond, scipy is slow (up to ~0.1 ms) and inaccurate
    with np.errstate(all="ignore"):
        h = special.hyp2f1(1.0, P[near], n[near] + 1.0, z[near])
        ok = np.isfinite(h) & (h >= 1.0 - 1e-12)
        ok &= (kappa[near] <= 0) | (h * kappa[near] <= n[near] * (1.0 + 1e-10))
        good = near[ok]
        out[0, good] = np.log(h[ok]) - np.log(n[good])
        if grad and good.size:
            Pg, kg, zg = P[good], kappa[good], z[good]
            hP = 1e-5 * (1.0 + Pg)
            hk = np.minimum(1e-5 * (1.0 + np.abs(kg)), 0.25 * n[good])
            hz = 1e-6
            out[1, good] = (_log_k_scipy(Pg + hP, kg, zg) - _log_k_scipy(Pg - hP, kg, zg)) / (
                2 * hP
            )
            out[2, good] = (_log_k_scipy(Pg, kg + hk, zg) - _log_k_scipy(Pg, kg - hk, zg)) / (
                2 * hk
            )
            out[3, good] = (_log_k_scipy(Pg, kg, zg - hz) - _log_k_scipy(Pg, kg, zg + hz)) / (
                2 * hz
            )
        bad = np.ones(n.size, dtype=bool)
        bad[good] = False
        if np.any(bad):
            fallback = _chunked(
                lambda a, b, c: _log_k_series_quad(a, b, c, grad), P[bad], kappa[bad], y[bad]
            )
            out[:, bad] = fallback.reshape(out.shape[0], -1)
    return out if grad else out[0]


def _log_phi(w: FloatArray, c: FloatArray, a: FloatArray) -> FloatArray:
    """log of ((1 + c w)^(1-a) - 1) / (1 - a), continuous through a = 1."""
    k = 1.0 - a
    ell = np.log1p(c * w)
    small = np.abs(k * ell) < 1e-8
    safe_k = np.where(small, 1.0, k)
    return np.log(np.where(small, ell * (1.0 + 0.5 * k * ell), np.expm1(k * ell) / safe_k))


def _bg_alive_mean_quad(m: FloatArray, A: FloatArray, a: FloatArray, c: FloatArray) -> FloatArray:
    """E[phi(w)], w ~ Beta(m, A), phi as in _log_phi, by quadrature in v = -log w.

    This is the BG/NBD (1 - Q)/(a - 1) term written as an expectation (valid for A > 0);
    used where scipy's 2F1 fails (large b). The log-integrand is unimodal: find the peak
    and the points 60 e-folds below it by bisection, integrate in between.
    """

    def g(v: FloatArray) -> FloatArray:
        return -m * v + (A - 1.0) * np.log1p(-np.exp(-v)) + _log_phi(np.exp(-v), c, a)

    def dg(v: FloatArray) -> FloatArray:
        cw = c * np.exp(-v)
        elasticity = cw * np.exp(-a * np.log1p(cw) - _log_phi(np.exp(-v), c, a))
        return -m + (A - 1.0) / np.expm1(v) - elasticity

    tiny = np.full(m.size, 1e-10)
    v_max = np.log1p(np.maximum(c, np.maximum(A - 1.0, 0.0) / m)) + 60.0
    peak = np.where(dg(tiny) > 0, _bisect(dg, tiny, v_max), tiny)
    level = g(peak) - 60.0
    lo = np.where(g(tiny) < level, _bisect(lambda v: level - g(v), tiny, peak), 0.0)
    v_up = np.maximum(peak, (np.log(c) - level) / (m + 1.0)) + 1.0
    hi = _bisect(lambda v: g(v) - level, peak, v_up)
    return np.exp(_log_gauss_legendre(g, lo, hi) - special.betaln(m, A))


def _bg_alive_mean(
    r: float, alpha: float, a: float, b: float, t: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    """E[purchases in (T, T + t] | alive at T, x] under BG/NBD, elementwise.

    (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
    z = t/(alpha+T+t), with the 2F1 Euler-transformed to
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), which neither overflows for large x nor
    cancels catastrophically; near a = 1 (a removable singularity) by interpolating
    between a = 1 -+ 2e-6.
    """
    if abs(a - 1.0) < 1e-6:
        lower = _bg_alive_mean(r, alpha, 1.0 - 2e-6, b, t, x, T)
        upper = _bg_alive_mean(r, alpha, 1.0 + 2e-6, b, t, x, T)
        return lower + (upper - lower) * (a - (1.0 - 2e-6)) / 4e-6
    t, x, T = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(t, x, T))
    shape = t.shape
    t, x, T = t.ravel(), x.ravel(), T.ravel()
    c = t / (alpha + T)
    z = t / (alpha + T + t)
    big_c = a + b + x - 1.0
    with np.errstate(all="ignore"):
        h = special.hyp2f1(a + b - 1.0 - r, a - 1.0, big_c, z)
        mean = -np.expm1(-(a - 1.0) * np.log1p(c) + np.log(h)) / (a - 1.0)
        # 0 <= E[Y | alive] <= E[lambda | alive] t = (r + x) c
        bound = (r + x) * c / big_c
        bad = ~(np.isfinite(mean) & (mean >= -1e-12 * bound) & (mean <= bound * (1 + 1e-8)))
        bad &= c > 0
        if np.any(bad):
            shape_a = a + b - 1.0 - r
            if shape_a <= 0:
                raise ValueError(
                    "BG/NBD expected purchases cannot be evaluated accurately for these "
                    f"parameters (r={r:.4g} >= a+b-1={a + b - 1:.4g})"
                )
            m = r + x[bad]
            mean[bad] = _chunked(
                _bg_alive_mean_quad,
                m,
                np.full(m.size, shape_a),
                np.full(m.size, a),
                c[bad],
            )
    return (big_c * np.clip(mean, 0.0, None)).reshape(shape)


def _one_minus_power_over(k: float, ell: FloatArray) -> FloatArray:
    """(1 - exp(-k ell)) / k, continuous through k = 0 (where it is ell)."""
    if abs(k) < 1e-10:
        return ell * (1.0 - 0.5 * k * ell)
    return -np.expm1(-k * ell) / k


# --------------------------------------------------------------------------- base class


@dataclass(frozen=True)
class _Model:
    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{type(self).__name__}.{f.name} must be a finite number > 0")

    def as_dict(self) -> dict[str, float]:
        """Parameters by name, e.g. for the model-run table."""
        return {k: float(v) for k, v in asdict(self).items()}


# --------------------------------------------------------------------------- BG/NBD


@dataclass(frozen=True)
class BgNbd(_Model):
    """BG/NBD: Poisson purchases, Gamma(r, alpha) rates, dropout after a purchase w.p. p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(
        cls, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None
    ) -> Self:
        """Maximum-likelihood fit; ``weights`` count how many customers each row stands for."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=True)
        (xa, ta, Ta), w, _ = _collapse([xa, ta, Ta], _weights(weights, xa.size))
        unit = _time_unit(xa, Ta, w)
        # start: r = 1 and alpha matching the crude purchase rate sum(x) / sum(T)
        start = np.array([1.0, w.sum() / (w @ xa), 1.0, 1.0])
        objective = _BgNbdObjective(xa, ta / unit, Ta / unit, w)
        r, alpha, a, b = _minimise(
            "BG/NBD",
            ("r", "alpha", "a", "b"),
            objective,
            start,
            units=np.array([1.0, unit, 1.0, 1.0]),
        )
        return cls(r=float(r), alpha=float(alpha), a=float(a), b=float(b))

    def log_likelihood(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """Per-customer log-likelihood of the histories (sum it for the total)."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=False)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore"):
            log_alive, log_dead = _bg_terms(r, alpha, a, b, xa, ta, Ta)
        return (
            special.gammaln(r + xa)
            - special.gammaln(r)
            + r * math.log(alpha)
            + special.betaln(a, b + xa)
            - special.betaln(a, b)
            + np.logaddexp(log_alive, log_dead)
        )

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(still alive at T | history); exactly 1 for x == 0 under this model."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=False)
        with np.errstate(divide="ignore"):
            log_alive, log_dead = _bg_terms(self.r, self.alpha, self.a, self.b, xa, ta, Ta)
        return special.expit(log_alive - log_dead)

    def expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected number of purchases in the next ``t`` periods after T, given the history."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=False)
        ha = _horizon(t)
        alive_mean = _on_distinct(
            lambda ts, xs, Ts: _bg_alive_mean(self.r, self.alpha, self.a, self.b, ts, xs, Ts),
            ha,
            xa,
            Ta,
        )
        return alive_mean * self.p_alive(xa, ta, Ta)

    def expected_purchases_new(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases in (0, t] of a customer just acquired at time 0."""
        ha = _horizon(t)
        zero = np.zeros_like(ha)
        return _bg_alive_mean(self.r, self.alpha, self.a, self.b, ha, zero, zero)


def _bg_terms(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """log of the 'alive at T' and 'dropped out after the last purchase' likelihood terms,
    without the factors that depend on x only."""
    rx = r + x
    log_alive = -rx * np.log(alpha + T)
    log_dead = np.where(
        x > 0,
        math.log(a) - np.log(b + np.maximum(x - 1.0, 0.0)) - rx * np.log(alpha + t_x),
        -np.inf,
    )
    return log_alive, log_dead


class _BgNbdObjective:
    """Mean negative log-likelihood per customer and its gradient in log-parameters.

    Per customer the log-likelihood is c(x) + log(e^A + e^D) with A a function of (x, T)
    and D of (x, t_x); both are computed per distinct pair, and the gradient's per-row
    weights are summed back into the pairs, so a row costs a handful of cheap operations.
    """

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> None:
        self.w = w
        self.total = float(w.sum())
        self.ux, self.wx = _by_value(x, w)
        self.pT, self.ptx = _Pairs(x, T), _Pairs(x, t_x)
        self.w_T = self.pT.total(w)
        tx_repeat = self.ptx.x > 0
        self.tx_repeat = tx_repeat
        self.tx_xm1 = np.where(tx_repeat, self.ptx.x - 1.0, 0.0)

    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, a, b = np.exp(theta)
        pT, ptx, ux, wx, W = self.pT, self.ptx, self.ux, self.wx, self.total
        dg = special.digamma
        log_aT, log_atx = np.log(alpha + pT.tau), np.log(alpha + ptx.tau)
        log_alive = -(r + pT.x) * log_aT
        inv_b = np.where(self.tx_repeat, 1.0 / (b + self.tx_xm1), 0.0)
        with np.errstate(divide="ignore"):
            log_dead = np.where(
                self.tx_repeat, math.log(a) + np.log(inv_b) - (r + ptx.x) * log_atx, -np.inf
            )
        mix, p_dead = _softplus_sigmoid(log_dead[ptx.at] - log_alive[pT.at])
        w_dead_row = self.w * p_dead
        w_dead_tx = ptx.total(w_dead_row)
        w_live_T = self.w_T - pT.total(w_dead_row)
        ll = (
            wx @ (special.gammaln(r + ux) + special.betaln(a, b + ux))
            + W * (r * math.log(alpha) - special.gammaln(r) - special.betaln(a, b))
            + self.w_T @ log_alive
            + self.w @ mix
        )
        d_r = wx @ dg(r + ux) + W * (math.log(alpha) - dg(r))
        d_r -= w_live_T @ log_aT + w_dead_tx @ log_atx
        d_alpha = W * r / alpha - w_live_T @ ((r + pT.x) / (alpha + pT.tau))
        d_alpha -= w_dead_tx @ ((r + ptx.x) / (alpha + ptx.tau))
        d_a = W * dg(a + b) - wx @ dg(a + b + ux) + w_dead_tx.sum() / a
        d_b = wx @ (dg(b + ux) - dg(a + b + ux)) + W * (dg(a + b) - dg(b)) - w_dead_tx @ inv_b
        grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
        return -ll / W, -grad / W


# --------------------------------------------------------------------------- Pareto/NBD


@dataclass(frozen=True)
class ParetoNbd(_Model):
    """Pareto/NBD: Poisson purchases, Gamma(r, alpha) rates, exponential lifetimes with
    Gamma(s, beta) dropout rates."""

    r: float
    alpha: float
    s: float
    beta: float

    @classmethod
    def fit(
        cls, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None
    ) -> Self:
        """Maximum-likelihood fit; ``weights`` count how many customers each row stands for."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=True)
        (xa, ta, Ta), w, _ = _collapse([xa, ta, Ta], _weights(weights, xa.size))
        unit = _time_unit(xa, Ta, w)
        start = np.array([1.0, w.sum() / (w @ xa), 1.0, 1.0])
        objective = _ParetoObjective(xa, ta / unit, Ta / unit, w)
        r, alpha, s, beta = _minimise(
            "Pareto/NBD",
            ("r", "alpha", "s", "beta"),
            objective,
            start,
            units=np.array([1.0, unit, 1.0, unit]),
        )
        return cls(r=float(r), alpha=float(alpha), s=float(s), beta=float(beta))

    def _parts(
        self, x: FloatArray, t_x: FloatArray, T: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """log of the 'alive at T' term, of s * integral (died in (t_x, T]), and x-only part."""
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        log_g = _on_distinct(
            lambda xs, taus: _pareto_log_g(r, alpha, s, beta, xs, taus),
            np.concatenate([x, x]),
            np.concatenate([t_x, T]),
        )
        log_dead = math.log(s) + _log_difference(log_g[: x.size], log_g[x.size :])
        log_alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        common = (
            special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
        )
        return log_alive, log_dead, common

    def log_likelihood(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """Per-customer log-likelihood of the histories (sum it for the total)."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=False)
        shape = xa.shape
        log_alive, log_dead, common = self._parts(xa.ravel(), ta.ravel(), Ta.ravel())
        return (common + np.logaddexp(log_alive, log_dead)).reshape(shape)

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(still alive at T | history)."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=False)
        shape = xa.shape
        log_alive, log_dead, _ = self._parts(xa.ravel(), ta.ravel(), Ta.ravel())
        return special.expit(log_alive - log_dead).reshape(shape)

    def expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected number of purchases in the next ``t`` periods after T, given the history."""
        xa, ta, Ta = _histories(x, t_x, T, same_shape=False)
        ha = _horizon(t)
        # E[lambda | x, T] * E[time alive in (T, T+t] | alive at T] * P(alive)
        lifetime = (self.beta + Ta) * _one_minus_power_over(
            self.s - 1.0, np.log1p(ha / (self.beta + Ta))
        )
        return (self.r + xa) / (self.alpha + Ta) * lifetime * self.p_alive(xa, ta, Ta)

    def expected_purchases_new(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases in (0, t] of a customer just acquired at time 0."""
        ha = _horizon(t)
        lifetime = self.beta * _one_minus_power_over(self.s - 1.0, np.log1p(ha / self.beta))
        return self.r / self.alpha * lifetime


def _log_difference(log_a: FloatArray, log_b: FloatArray) -> FloatArray:
    """log(exp(log_a) - exp(log_b)) for log_a >= log_b; -inf when they are equal."""
    with np.errstate(divide="ignore"):
        return log_a + np.log(-np.expm1(np.minimum(log_b - log_a, 0.0)))


def _pareto_log_g(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, tau: FloatArray
) -> FloatArray:
    """log of G(tau) = int_tau^inf (alpha+u)^-(r+x) (beta+u)^-(s+1) du, elementwise.

    The Pareto/NBD likelihood's second term is s * (G(t_x) - G(T)). With S, L the smaller
    and larger of alpha, beta and the exponents arranged to match (Fader & Hardie's two
    cases), G = (S+tau)^-kappa (L+tau)^-P K with K = 2F1(1, P; P+kappa+1; z) / (P+kappa),
    z = (L-S)/(L+tau).
    """
    return _pareto_log_g_grad(r, alpha, s, beta, x, tau, grad=False)[0]


def _pareto_log_g_grad(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: FloatArray,
    tau: FloatArray,
    *,
    grad: bool = True,
) -> tuple[FloatArray, FloatArray | None]:
    """log G (see _pareto_log_g) and, with ``grad``, its derivatives in the log-parameters
    (rows: log r, log alpha, log s, log beta)."""
    alpha_larger = alpha >= beta
    if alpha_larger:
        small, large, P, kappa = beta, alpha, r + x, np.full_like(x, s)
    else:
        small, large, P, kappa = alpha, beta, np.full_like(x, s + 1.0), r + x - 1.0
    near, far = small + tau, large + tau
    y = near / far
    log_near, log_far = np.log(near), np.log(far)
    k = _log_k(P, kappa, y, (large - small) / far, grad=grad)
    log_k = k[0] if grad else k
    log_g = -kappa * log_near - P * log_far + log_k
    if not grad:
        return log_g, None
    k_P, k_kappa, k_y = k[1], k[2], k[3]
    if alpha_larger:  # kappa = s, P = r + x, y = (beta+tau)/(alpha+tau)
        d = [-log_far + k_P, -P / far - k_y * y / far, -log_near + k_kappa, -s / near + k_y / far]
    else:  # kappa = r + x - 1, P = s + 1, y = (alpha+tau)/(beta+tau)
        d = [
            -log_near + k_kappa,
            -kappa / near + k_y / far,
            -log_far + k_P,
            -P / far - k_y * y / far,
        ]
    return log_g, np.stack(d) * np.array([r, alpha, s, beta])[:, None]


class _ParetoObjective:
    """Mean negative log-likelihood per customer and its gradient in log-parameters.

    Per customer, with g = log G at (x, t_x) and (x, T) and A the log 'alive' term at
    (x, T), the log-likelihood is c(x) + g_tx + log(s (1 - e^(g_T - g_tx)) + e^(A - g_tx)).
    g and A are computed per distinct (x, tau) pair, so the 2F1 evaluations scale with the
    number of pairs and a row costs a few cheap operations. The gradient is analytic in
    the per-row part (its weights are summed back into the pairs) and takes g's derivatives
    from _pareto_log_g_grad (analytic where the series/quadrature evaluates 2F1, central
    differences where scipy does).
    """

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> None:
        n = x.size
        self.w = w
        self.total = float(w.sum())
        self.ux, self.wx = _by_value(x, w)
        self.pairs = _Pairs(np.concatenate([x, x]), np.concatenate([t_x, T]))
        self.at_tx, self.at_T = self.pairs.at[:n], self.pairs.at[n:]
        self.w_tx = self.pairs.total(np.concatenate([w, np.zeros(n)]))

    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, s, beta = np.exp(theta)
        px, ptau, n, W = self.pairs.x, self.pairs.tau, self.at_tx.size, self.total
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            log_g, d_log_g = _pareto_log_g_grad(r, alpha, s, beta, px, ptau)
            log_aT, log_bT = np.log(alpha + ptau), np.log(beta + ptau)
            log_alive = -(r + px) * log_aT - s * log_bT
            g_tx = log_g[self.at_tx]
            ratio = np.exp(np.maximum(log_g[self.at_T] - g_tx, -700.0))  # G(T) / G(t_x)
            alive = np.exp(np.maximum(log_alive[self.at_T] - g_tx, -700.0))
            died = -np.expm1(np.maximum(log_g[self.at_T] - g_tx, -700.0))
            inner = s * died + alive
            ll = (
                self.wx @ special.gammaln(r + self.ux)
                + W * (r * math.log(alpha) + s * math.log(beta) - special.gammaln(r))
                + self.w_tx @ log_g
                + self.w @ np.log(inner)
            )
            if not np.isfinite(ll):
                return 1e300, np.zeros(4)
            # d ll / d (g at t_x, g at T, A at T), per row, summed into pairs
            w_inner = self.w / inner
            c_gT = -s * ratio * w_inner
            c_alive = alive * w_inner
            to_pairs = self.pairs.total
            c_g = self.w_tx + to_pairs(np.concatenate([-c_gT - c_alive, c_gT]))
            c_A = to_pairs(np.concatenate([np.zeros(n), c_alive]))
            d_alive = np.array(
                [
                    -r * log_aT,
                    -(r + px) * alpha / (alpha + ptau),
                    -s * log_bT,
                    -s * beta / (beta + ptau),
                ]
            )
            grad = d_log_g @ c_g + d_alive @ c_A
            grad += [
                r
                * (
                    self.wx @ special.digamma(r + self.ux)
                    + W * (math.log(alpha) - special.digamma(r))
                ),
                W * r,
                s * (W * math.log(beta) + died @ w_inner),
                W * s,
            ]
        return -ll / W, -grad / W


# --------------------------------------------------------------------------- Gamma-Gamma


@dataclass(frozen=True)
class GammaGamma(_Model):
    """Gamma-Gamma spend: transaction values Gamma(p, nu), nu ~ Gamma(q, v) across customers."""

    p: float
    q: float
    v: float

    @classmethod
    def fit(cls, x: ArrayLike, m: ArrayLike, *, weights: ArrayLike | None = None) -> Self:
        """Fit on customers with x >= 1 transactions of mean value m > 0 (drop the others first)."""
        xa, ma = _spend(x, m, same_shape=True)
        _fail_where(xa < 1, "GammaGamma.fit needs x >= 1 (fit on customers with repeat purchases)")
        w = _weights(weights, xa.size)
        if np.any(w == 0):  # mean spend is continuous: rows rarely repeat, so no collapsing
            xa, ma, w = xa[w > 0], ma[w > 0], w[w > 0]
        if np.ptp(ma) == 0:
            raise ValueError(
                "all mean spends m are identical: the spread of spend between customers, "
                "which the Gamma-Gamma model describes, cannot be estimated"
            )
        unit = float(w @ ma / w.sum())  # spend is fitted in units of its mean
        objective = _GammaGammaObjective(xa, ma / unit, w)
        p, q, v = _minimise(
            "Gamma-Gamma",
            ("p", "q", "v"),
            objective,
            np.array([1.0, 2.0, 1.0]),
            units=np.array([1.0, 1.0, unit]),
        )
        return cls(p=float(p), q=float(q), v=float(v))

    def log_likelihood(self, x: ArrayLike, m: ArrayLike) -> FloatArray:
        """Per-customer log-density of the mean spend m given x >= 1 transactions."""
        xa, ma = _spend(x, m, same_shape=False)
        _fail_where(xa < 1, "log_likelihood needs x >= 1")
        return _gg_log_density(self.p, self.q, self.v, xa, ma)

    def expected_average_spend(self, x: ArrayLike, m: ArrayLike) -> FloatArray:
        """E[mean transaction value | x, m]: m shrunk towards the population mean p v / (q - 1).

        For x == 0 the population mean is returned and m is ignored (it may be NaN).
        """
        xa = _float_array("x", x)
        ma = np.asarray(m, dtype=float)
        xa, ma = np.broadcast_arrays(xa, ma)
        xa, ma_checked = _spend(xa, np.where(xa > 0, ma, 1.0), same_shape=False)
        denominator = self.p * xa + self.q - 1.0
        if np.any(denominator <= 0):
            raise ValueError(
                f"q = {self.q:.4g} <= 1: the expected spend is infinite for customers with "
                "x == 0 (population mean) or too few transactions"
            )
        return self.p * (self.v + xa * ma_checked) / denominator


def _spend(x: ArrayLike, m: ArrayLike, *, same_shape: bool) -> tuple[FloatArray, FloatArray]:
    xa, ma = _float_array("x", x), _float_array("m", m)
    if same_shape:
        if not (xa.ndim == 1 and xa.shape == ma.shape):
            raise ValueError(
                f"x and m must be 1-D arrays of the same length, got shapes {xa.shape}, {ma.shape}"
            )
        if xa.size == 0:
            raise ValueError("no customers to fit on (empty arrays)")
    else:
        try:
            xa, ma = np.broadcast_arrays(xa, ma)
        except ValueError as exc:
            raise ValueError(f"x and m have incompatible shapes {xa.shape}, {ma.shape}") from exc
    _fail_where(xa < 0, "x must be >= 0 (number of transactions)")
    _fail_where(xa != np.floor(xa), "x must be a whole number of transactions")
    _fail_where(ma <= 0, "m (mean spend per transaction) must be > 0")
    return xa, ma


def _gg_log_density(p: float, q: float, v: float, x: FloatArray, m: FloatArray) -> FloatArray:
    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * math.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + m * x)
    )


class _GammaGammaObjective:
    """Mean negative log-likelihood per customer and its gradient in log-parameters.

    Only log(v + m x) and 1 / (v + m x) need a pass over the customers; the terms in x alone
    are summed per distinct x and the ones in log m are constants.
    """

    def __init__(self, x: FloatArray, m: FloatArray, w: FloatArray) -> None:
        self.mx = m * x
        self.weights = np.stack([w, w * x])  # sums with weight w and w * x in one product
        self.total = float(w.sum())
        self.ux, self.wx = _by_value(x, w)
        self.sum_log_m = float(w @ np.log(m))
        self.sum_x_log_xm = float((w * x) @ (np.log(x) + np.log(m)))

    def __call__(self, theta: FloatArray) -> tuple[float, FloatArray]:
        p, q, v = np.exp(theta)
        ux, wx, W = self.ux, self.wx, self.total
        pu = p * ux
        v_mx = v + self.mx
        sum_log, sum_x_log = self.weights @ np.log(v_mx)
        sum_inv, sum_x_inv = self.weights @ (1.0 / v_mx)
        ll = (
            wx @ (special.gammaln(pu + q) - special.gammaln(pu))
            + p * (self.sum_x_log_xm - sum_x_log)
            - self.sum_log_m
            - q * sum_log
            + W * (q * math.log(v) - special.gammaln(q))
        )
        dg_pq = special.digamma(pu + q)
        d_p = (wx * ux) @ (dg_pq - special.digamma(pu)) + self.sum_x_log_xm - sum_x_log
        d_q = wx @ dg_pq - sum_log + W * (math.log(v) - special.digamma(q))
        d_v = W * q / v - p * sum_x_inv - q * sum_inv
        grad = np.array([d_p * p, d_q * q, d_v * v])
        return -ll / W, -grad / W
