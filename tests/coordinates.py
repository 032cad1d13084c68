"""Test helper: a point's persistent rates in the sampler's own coordinate."""

from __future__ import annotations

import numpy as np


def set_rates(model, point: dict, beta) -> dict:
    """Put persistent rates ``beta`` (points/month) into ``point`` (value variables) in the
    coordinate the model samples: ``beta_pre_pc`` (partly centred) or ``beta_pre_z`` (at the
    conditional posterior, beta = c + s z with c and s functions of the other parameters,
    read off the graph at z = 0 and z = 1)."""
    beta = np.asarray(beta, dtype=float)
    if "beta_pre_pc" in model.pymc_model.named_vars:
        point["beta_pre_pc"] = model._partly_centred(
            beta, float(point["mu_beta"]), float(np.exp(point["sd_beta_log__"])))
        return point
    pmm = model.pymc_model
    fn = pmm.compile_fn(pmm.replace_rvs_by_values([pmm["beta_pre"]])[0],
                        inputs=pmm.value_vars, on_unused_input="ignore")
    c = fn(point | {"beta_pre_z": np.zeros_like(beta)})
    s = fn(point | {"beta_pre_z": np.ones_like(beta)}) - c
    point["beta_pre_z"] = (beta - c) / s
    return point
