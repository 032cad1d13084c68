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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["MarginalTerms", "exposure_gram", "marginal_terms"]


def exposure_gram(x_cycle: np.ndarray, patient_index: np.ndarray, n_patients: int) -> np.ndarray:
    """A_i = X_i' X_i for every patient: (patient, cycle, cycle), months squared."""
    k = x_cycle.shape[1]
    gram = np.zeros((n_patients, k, k))
    np.add.at(gram, patient_index, x_cycle[:, :, None] * x_cycle[:, None, :])
    return gram


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
    """Cholesky of H, C^-1 h and the marginal log density, unrolled over the (K+1) dims.

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
    var = sigma**2
    a1 = gram.sum(axis=2)  # (patient, K)
    a11 = gram.sum(axis=(1, 2))  # (patient,)
    s2 = s**2
    # H = sigma^2 I + L' A L, L = s [sd_cycle I | sd_patient 1]
    H = [[None] * (k + 1) for _ in range(k + 1)]
    for i in range(k):
        for j in range(i + 1):
            H[i][j] = s2 * sd_cycle**2 * gram[:, i, j] + (var if i == j else 0.0)
        H[k][i] = s2 * sd_cycle * sd_patient * a1[:, i]
    H[k][k] = s2 * sd_patient**2 * a11 + var
    h = [s * sd_cycle * bi for bi in b]
    h.append(s * sd_patient * sum(b))

    C = [[None] * (k + 1) for _ in range(k + 1)]
    for i in range(k + 1):
        for j in range(i + 1):
            acc = H[i][j]
            for m in range(j):
                acc = acc - C[i][m] * C[j][m]
            C[i][j] = sqrt(acc) if i == j else acc / C[j][j]
    z = []
    for i in range(k + 1):
        acc = h[i]
        for m in range(i):
            acc = acc - C[i][m] * z[m]
        z.append(acc / C[i][i])
    quad = sum(zi**2 for zi in z)
    logdet = 2.0 * sum(log(C[i][i]) for i in range(k + 1))
    logp = -0.5 * (
        n_visits * np.log(2.0 * np.pi) + (n_visits - (k + 1)) * log(var) + logdet
        + (c - quad) / var
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
    n = len(C)
    rhs = [terms.z[i] + sigma * eps[i] for i in range(n)]
    out = [None] * n
    for i in reversed(range(n)):
        acc = rhs[i]
        for m in range(i + 1, n):
            acc = acc - C[m][i] * out[m]
        out[i] = acc / C[i][i]
    return out
