"""Exact integration of the patient and patient-cycle slowing effects (Normal likelihood).

Given everything else, the scores are linear in the slowing effects u_i and e_ik, whose priors
are Normal, so they can be integrated out exactly. Write the slope of cycle k as

    beta_ik = f_ik + s_i * (sd_patient_cycle * z_ik + sd_patient * z_i),   z ~ N(0, 1)

with f_ik the slope at the patient's expected slowing (``beta_i0 (1 - m_ik)`` in the ratio form,
``beta_i0 + m_ik`` in the additive form) and s_i = -beta_i0 (ratio) or 1 (additive). With
X_i the patient's (visit x cycle) exposure matrix, L_i = s_i [sd_pc I_K | sd_p 1] (K x K+1)
and r_i = y_i - mu_i(f), the scores are r_i = X_i L_i zeta_i + noise, zeta_i ~ N(0, I_{K+1}):

    r_i ~ N(0, sigma^2 I + X_i L_i L_i' X_i')

whose log density needs only the (K+1) x (K+1) matrix H_i = sigma^2 I + L_i' A_i L_i
(A_i = X_i' X_i) and h_i = L_i' X_i' r_i:

    log p = -1/2 [n_i log 2 pi + (n_i - K - 1) log sigma^2 + log det H_i
                  + (r_i'r_i - h_i' H_i^-1 h_i) / sigma^2]

The conditional posterior of zeta_i is N(H_i^-1 h_i, sigma^2 H_i^-1), from which the patient x
cycle slowing is drawn after sampling. The Cholesky factor of H_i is unrolled into elementwise
operations over patients (K is small), so the same code runs on PyTensor tensors (inside the
model) and on NumPy arrays (after sampling).

**Natural drift** (:func:`low_rank_terms`, the general form). The drift d_ik ~ N(0, sd_drift)
of each period's rate is linear-Gaussian too. A cycle's drift and its patient-cycle slowing
share the cycle's exposure column, so they combine into one effect with SD
s_ik = sqrt(load_ik^2 sd_pc^2 + sd_drift^2) (load_ik = -n_ik in the ratio form, n_ik the natural
rate); the run-in's drift adds one effect on the run-in exposure min(t, 0). L_i is then
(K+1) x (K+2) over the exposures (cycles, run-in) and the effects (cycles, patient, run-in
drift), given by its non-zero entries. After sampling, each cycle's combined draw is split into
slowing and drift from their exact joint Gaussian conditional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MarginalTerms", "exposure_gram", "low_rank_terms", "marginal_terms", "patient_moments",
    "residual_products", "solve_lower", "solve_upper",
]


def exposure_gram(x_cycle: np.ndarray, patient_index: np.ndarray, n_patients: int) -> np.ndarray:
    """A_i = X_i' X_i for every patient: (patient, cycle, cycle), months squared."""
    return patient_moments(x_cycle, np.zeros(len(x_cycle)), patient_index, n_patients)[0]


def patient_moments(z: np.ndarray, y: np.ndarray, patient_index: np.ndarray,
                    n_patients: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each patient's moments of the visit covariates z and scores y.

    The scores' mean is linear in per-patient coefficients w_i (mu_v = z_v' w_i), so the
    residual's cross-products that the marginal density needs follow from these alone:
    X_i' r_i = S_zy - S_zz w_i (for the columns of z that are exposures) and
    r_i' r_i = S_yy - w_i' S_zy - w_i' (S_zy - S_zz w_i). No work per visit is left in the
    log density or its gradient.

    Parameters
    ----------
    z : ndarray (visit, D)
        Visit covariates (e.g. 1, run-in exposure, cycle exposures, jump steps; months).
    y : ndarray (visit,)
    patient_index : ndarray (visit,)
    n_patients : int

    Returns
    -------
    S_zz (patient, D, D), S_zy (patient, D), S_yy (patient,)
    """
    d = z.shape[1]
    szz = np.zeros((n_patients, d, d))
    np.add.at(szz, patient_index, z[:, :, None] * z[:, None, :])
    szy = np.zeros((n_patients, d))
    np.add.at(szy, patient_index, z * y[:, None])
    syy = np.bincount(patient_index, weights=y * y, minlength=n_patients)
    return szz, szy, syy


def residual_products(w: list, szz: dict, szy: list, syy) -> tuple[list, object]:
    """X' r for every covariate column, and r' r, from :func:`patient_moments`.

    Parameters
    ----------
    w : list of D arrays or tensors
        The coefficients per column (per patient), e.g. alpha_i, beta_i0, the cycle slopes.
    szz : dict
        ``{(d, e): S_zz[:, d, e]}`` for the pairs d <= e that are non-zero for some patient.
    szy : list of D arrays or tensors
        S_zy per column.
    syy : array or tensor

    Returns
    -------
    g : list of D
        z_d' r_i = S_zy,d - sum_e S_zz,de w_e.
    c
        r_i' r_i.
    """
    n = len(w)
    g = []
    for a in range(n):
        acc = szy[a]
        for e in range(n):
            s = szz.get((min(a, e), max(a, e)))
            if s is not None:
                acc = acc - s * w[e]
        g.append(acc)
    c = syy
    for a in range(n):
        c = c - w[a] * (szy[a] + g[a])
    return g, c


@dataclass
class MarginalTerms:
    """Per-patient pieces of the marginal density (arrays of any leading shape, last = patient).

    Attributes
    ----------
    chol : list of list
        Lower Cholesky factor C of H (``C[j][k]`` for k <= j).
    z : list
        C^-1 h.
    logp : array
        Marginal log density of each patient's scores.
    """

    chol: list
    z: list
    logp: object


def marginal_terms(
    b: list, c, gram: np.ndarray, n_visits: np.ndarray, s, sd_patient, sd_cycle, sigma,
    sqrt: Callable, log: Callable,
) -> MarginalTerms:
    """The slowing effects alone: L_i = s_i [sd_cycle I_K | sd_patient 1] (no drift).

    Parameters
    ----------
    b : list of K arrays
        X_i' r_i per cycle (points x months), each shaped like ``c``.
    c : array
        r_i' r_i (points squared).
    gram : ndarray (patient, K, K)
        A_i = X_i' X_i (constant).
    n_visits : ndarray (patient,)
    s, sd_patient, sd_cycle, sigma : arrays or tensors
        s_i (per patient) and the SDs, broadcastable against ``c``.
    sqrt, log : callables
        ``np.sqrt``/``np.log`` or their PyTensor counterparts.

    Returns
    -------
    MarginalTerms
    """
    k = gram.shape[1]
    loadings = {(j, j): s * sd_cycle for j in range(k)}
    loadings |= {(j, k): s * sd_patient for j in range(k)}
    return low_rank_terms(loadings, gram, b, c, n_visits, k + 1, sigma, sqrt=sqrt, log=log)


def low_rank_terms(
    loadings: dict, gram: np.ndarray, b: list, c, n_visits: np.ndarray, n_effects: int, sigma,
    sqrt: Callable, log: Callable,
) -> MarginalTerms:
    """Marginal density of r = X L zeta + noise, zeta ~ N(0, I), for a sparse loading matrix L.

    The general form behind :func:`marginal_terms`: X_i has m exposure columns (the cycles, and
    the run-in when its slope drifts), zeta_i has q standard normal effects, and L_i (m x q)
    is given by its non-zero entries. H_i = sigma^2 I_q + L_i' A_i L_i, h_i = L_i' X_i' r_i.

    Parameters
    ----------
    loadings : dict of (int, int) to array or tensor
        ``{(row, col): L_rc}``: exposure column ``row`` loads on effect ``col``; each value
        broadcasts against ``c`` (per patient, with any leading draw dims).
    gram : ndarray (patient, m, m) or dict
        A_i = X_i' X_i (months squared), or its entries that are non-zero for some patient as
        ``{(r, s): array (patient,)}`` (e.g. tensors).
    b : list of m arrays
        X_i' r_i per exposure column (points x months), each shaped like ``c``.
    c : array
        r_i' r_i (points squared).
    n_visits : ndarray (patient,)
    n_effects : int
        q, the number of effects (columns of L).
    sigma : array or tensor
        Residual SD, broadcastable against ``c``.
    sqrt, log : callables
        ``np.sqrt``/``np.log`` or their PyTensor counterparts.

    Returns
    -------
    MarginalTerms
    """
    q = n_effects
    if isinstance(gram, dict):
        entries = gram
    else:
        nonzero = np.asarray(gram).any(axis=0)
        entries = {(r, s): gram[:, r, s] for r, s in zip(*np.nonzero(nonzero), strict=True)}
    var = sigma**2
    by_col: dict[int, list] = {j: [] for j in range(q)}
    for (r, j), v in loadings.items():
        by_col[j].append((r, v))
    H = [[None] * q for _ in range(q)]
    for a in range(q):
        for bb in range(a + 1):
            acc = var if a == bb else 0.0
            for r, la in by_col[a]:
                for s, lb in by_col[bb]:
                    g = entries.get((r, s))
                    if g is not None:
                        acc = acc + la * lb * g
            H[a][bb] = acc
    h = []
    for a in range(q):
        acc = 0.0
        for r, la in by_col[a]:
            acc = acc + la * b[r]
        h.append(acc)
    C = [[None] * q for _ in range(q)]
    for i in range(q):
        for j in range(i + 1):
            acc = H[i][j]
            for m in range(j):
                acc = acc - C[i][m] * C[j][m]
            C[i][j] = sqrt(acc) if i == j else acc / C[j][j]
    z = solve_lower(C, h)
    quad = sum(zi**2 for zi in z)
    logdet = 2.0 * sum(log(C[i][i]) for i in range(q))
    logp = -0.5 * (
        n_visits * np.log(2.0 * np.pi) + (n_visits - q) * log(var) + logdet + (c - quad) / var
    )
    return MarginalTerms(chol=C, z=z, logp=logp)


def draw_effects(terms: MarginalTerms, sigma, eps: np.ndarray) -> list:
    """Draw zeta ~ N(H^-1 h, sigma^2 H^-1) = C'^-1 (z + sigma * eps) (NumPy only).

    Parameters
    ----------
    terms : MarginalTerms
        From :func:`marginal_terms` on NumPy arrays.
    sigma : ndarray
        Broadcastable against the terms.
    eps : ndarray (K+1, ...)
        Standard normal draws.

    Returns
    -------
    list of K+1 arrays
        zeta_0..zeta_{K-1} (patient-cycle effects z_ik) and zeta_K (patient effect z_i).
    """
    C = terms.chol
    return solve_upper(C, [terms.z[i] + sigma * eps[i] for i in range(len(C))])


def solve_lower(C: list, b: list) -> list:
    """x with C x = b, C lower triangular as ``C[i][j]`` (j <= i), unrolled (NumPy or
    PyTensor)."""
    x = []
    for i in range(len(C)):
        acc = b[i]
        for m in range(i):
            acc = acc - C[i][m] * x[m]
        x.append(acc / C[i][i])
    return x


def solve_upper(C: list, b: list) -> list:
    """x with C' x = b, C lower triangular as ``C[i][j]`` (j <= i), unrolled (NumPy or
    PyTensor)."""
    n = len(C)
    x = [None] * n
    for i in reversed(range(n)):
        acc = b[i]
        for m in range(i + 1, n):
            acc = acc - C[m][i] * x[m]
        x[i] = acc / C[i][i]
    return x
