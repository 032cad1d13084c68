"""Sampling, convergence diagnostics, and saving/loading fits."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import arviz_stats
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats

from slopeshift import convergence
from slopeshift.data import TrialData
from slopeshift.errors import _PACKAGE_DIR, ConvergenceWarning, DataWarning

if TYPE_CHECKING:
    from slopeshift.model import SlopeShiftModel

__all__ = ["LARGE_TRIAL", "FitResult", "default_target_accept"]

RHAT_MAX = 1.01
ESS_MIN = 400
#: Trials of at least this many patients (controls included) sample with target acceptance
#: 0.95 by default, smaller ones with 0.9 (see SlopeShiftModel.fit).
LARGE_TRIAL = 100
SAMPLERS = ("nutpie", "pymc", "numpyro")
# Elements per block of the vectorised diagnostics (500 x 4,000 draws: 16 MB per copy).
_DIAGNOSTIC_BLOCK = 500
# Variables started at the run-in least-squares fit and kept unjittered (see SlopeShiftModel);
# the natural change starts at its prior mean, far from the ratio model's mirror mode where a
# cycle's natural rate changes sign (see SlopeShiftModel._at_mean).
# (beta_pre_pc and beta_pre_z are beta_i0's sampled coordinates; sd_beta starts at its prior
# median, so that beta_pre_pc maps back to those fits, and beta_pre_z = 0 at the conditional
# mean)
_UNJITTERED = ("alpha", "beta_pre_pc", "beta_pre_z", "sd_beta", "mu_alpha", "mu_beta",
               "alpha_domain", "mu_alpha_domain", "acceleration", "natural_cycle",
               "natural_ratio")
# Derived quantities whose convergence is reported beside the sampled parameters.
_REPORTED = ("beta_pre", "sd_patient", "sd_patient_cycle", "rho_cycle", "rho_bar")


def _chain_starts(init: dict, chains: int, seed: int) -> list[dict]:
    """Per-chain starting points for samplers whose own jitter would move every parameter.

    Each chain starts near the run-in least-squares fit, with slopes scaled by 0.8-1.2 so that no
    chain starts across zero slope (the saddle of the ratio model); the SDs of the slowing
    effects start at different totals and shares.
    """
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(chains):
        start = dict(init)
        for name in ("alpha", "alpha_domain"):  # the total's, or each domain's (domains=True)
            if name in init:
                start[name] = init[name] + rng.normal(0.0, 0.5, init[name].shape)
        start["beta_pre"] = init["beta_pre"] * rng.uniform(0.8, 1.2, init["beta_pre"].shape)
        start["log_sd_effects"] = init["log_sd_effects"] + rng.uniform(-0.5, 0.5)
        start["logit_patient_share"] = init["logit_patient_share"] + rng.uniform(-1.0, 1.0)
        starts.append(start)
    return starts


def default_target_accept(n_patients: int, domains: bool = False) -> float:
    """The default NUTS target acceptance for a trial of ``n_patients`` (controls included).

    0.9 below :data:`LARGE_TRIAL` patients, 0.95 from there: at 150-200 patients 0.9 left
    R-hat above 1.01 in 6 of 6 trials of two generators and 0.95 in none
    (``benchmarks/bench_settings.py``, docs "Speed and memory"). The four-domain model
    (``domains=True``) always gets 0.95: at 0.9 it diverged in 3 of 8 simulated 20-patient
    trials (18 divergences in one, none at 0.95).
    """
    return 0.95 if domains or n_patients >= LARGE_TRIAL else 0.9


def _config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def sample_model(
    model: SlopeShiftModel,
    *,
    draws: int,
    tune: int,
    chains: int,
    random_seed: int | None,
    sampler: str,
    cores: int | None,
    target_accept: float | None,
    progressbar: bool,
    check: bool,
    mass_matrix: str = "diag",
) -> FitResult:
    """Sample ``model`` and wrap the result; see :meth:`SlopeShiftModel.fit`."""
    import pymc as pm

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}.")
    if mass_matrix not in ("diag", "low_rank"):
        raise ValueError(f"mass_matrix must be 'diag' or 'low_rank', not {mass_matrix!r}.")
    if mass_matrix != "diag" and sampler != "nutpie":
        raise ValueError("mass_matrix='low_rank' needs sampler='nutpie'.")
    if target_accept is None:
        target_accept = default_target_accept(model.design.sizes["patient"], model.domains)
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().entropy % (2**31))
    seed = int(random_seed)
    pm_model = model.pymc_model
    raw = model.initial_values()
    init = model._sampler_starts(raw)
    t0 = time.perf_counter()
    if sampler == "nutpie":
        import nutpie
        from pymc.backends.arviz import patch_nutpie_idata

        from slopeshift.compiled import nutpie_model

        compiled = model._compiled.get("nutpie")
        source = "model"
        if compiled is None:
            # compiled once per structure (kept in memory and on disk); another model of the
            # same structure (other data of the same sizes, other prior values) reuses it
            jitter = {rv for rv in pm_model.free_RVs if rv.name not in _UNJITTERED}
            compiled, source = nutpie_model(model, init, jitter)
            model._compiled["nutpie"] = compiled
        t1 = time.perf_counter()
        timing = {"compile_seconds": round(t1 - t0, 2),
                  "compiled_from_cache": source != "compiled", "compiled_from": source}
        idata = nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, cores=cores or chains, seed=seed,
            save_warmup=False, progress_bar=progressbar, target_accept=target_accept,
            adaptation=mass_matrix,
        )
        timing["sampling_seconds"] = round(time.perf_counter() - t1, 2)
        patch_nutpie_idata(idata, pm_model, sampling_time=timing["sampling_seconds"])
    elif sampler == "pymc":
        idata = pm.sample(
            draws=draws, tune=tune, chains=chains, cores=cores or chains, random_seed=seed,
            initvals=[model._sampler_starts(c) for c in _chain_starts(raw, chains, seed)],
            init="adapt_diag", model=pm_model,
            progressbar=progressbar, nuts_sampler="pymc", compute_convergence_checks=False,
            target_accept=target_accept,
        )
    else:
        try:
            import jax  # noqa: F401
            import numpyro  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "sampler='numpyro' needs JAX and NumPyro: pip install 'slopeshift[jax]'."
            ) from err
        idata = pm.sample(
            draws=draws, tune=tune, chains=chains, random_seed=seed,
            initvals=[model._sampler_starts(c) for c in _chain_starts(raw, chains, seed)],
            nuts={"jitter": False},
            model=pm_model, progressbar=progressbar, nuts_sampler="numpyro",
            compute_convergence_checks=False, target_accept=target_accept,
        )
    if model.marginal:
        # the slowing effects were integrated out: draw them from their exact conditional
        # posterior, and store each patient's marginal log-likelihood
        post = idata["posterior"].to_dataset()
        effects, loglik = model.draw_effects(post, random_seed=seed)
        idata["posterior"] = xr.DataTree(post.assign(effects))
        idata["log_likelihood"] = xr.DataTree(loglik.to_dataset())
        idata["observed_data"] = xr.DataTree(
            xr.Dataset({"y": ("visit", model.design["y"].values)},
                       coords={"visit": model.design["visit"].values})
        )
    else:
        idata = pm.compute_log_likelihood(
            idata, model=pm_model, extend_inferencedata=True, progressbar=False
        )
    elapsed = time.perf_counter() - t0
    fit_info = (timing if sampler == "nutpie" else {}) | {
        "sampler": sampler, "draws": draws, "tune": tune, "chains": chains,
        "random_seed": seed, "target_accept": target_accept, "mass_matrix": mass_matrix,
        "wall_seconds": round(elapsed, 2),
        "diagnosed_variables": list(dict.fromkeys([rv.name for rv in pm_model.free_RVs] + [
            v for v in _REPORTED if v in pm_model.named_vars
        ])),
    }
    result = FitResult(idata=idata, data=model.data, config=model.to_config(), fit_info=fit_info,
                       design=model.design)
    if check:
        result.check()
    return result


class FitResult:
    """A fitted model: the posterior (an ``xarray.DataTree``), the data and the configuration.

    Tables (each a tidy ``pandas.DataFrame``, each taking ``threshold=``):
    :meth:`slowing` (patient x cycle), :meth:`patients`, :meth:`cycles`, :meth:`population`,
    :meth:`responders` and :meth:`interval_effect`. They are pure functions of the stored
    posterior, so a saved and reloaded fit gives identical tables.

    Attributes
    ----------
    idata : xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data`` and
        ``design`` (the model's design, see :func:`slopeshift.design.build_design`).
    data : TrialData
    config : dict
        Model options and priors.
    fit_info : dict
        Sampler, draws, tune, chains, random seed, wall time (seconds).
    """

    def __init__(self, idata: xr.DataTree, data: TrialData, config: dict, fit_info: dict,
                 design: xr.Dataset | None = None):
        self.idata = idata
        self.data = data
        self.config = config
        self.fit_info = fit_info
        self._diagnostics: pd.DataFrame | None = None  # computed once (thousands of ESS)
        # tables computed once per fit and arguments (a report asks for the same table from
        # several places); callers get copies, so editing one cannot change the next
        self._tables: dict[tuple, pd.DataFrame] = {}
        if design is not None:
            self.idata["design"] = xr.DataTree(design)

    # ------------------------------------------------------------------ diagnostics
    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws as a Dataset (dims chain, draw, patient, cycle)."""
        return self.idata["posterior"].to_dataset()

    @property
    def design(self) -> xr.Dataset:
        """The design the model was fitted with."""
        return self.idata["design"].to_dataset()

    def diagnostics(self) -> pd.DataFrame:
        """Convergence diagnostics of every sampled parameter.

        Returns
        -------
        pandas.DataFrame
            One row per sampled parameter and per reported derived quantity (beta_pre, sd_patient,
            sd_patient_cycle, rho_cycle, rho_bar), and for the slowing drawn after sampling
            (``rho``: every patient x cycle that counts; ``rho_patient``: each patient's overall
            slowing rho_i, on which responder calls rest): ``r_hat`` (largest over its
            elements), ``ess_bulk`` and ``ess_tail`` (smallest), and ``ok``. ``attrs`` holds
            ``divergences`` (count), ``draws`` (total) and ``ok`` (every bound met: R-hat <= 1.01,
            ESS >= 400, no divergence). Computed once per fit (a 2,000-patient fit has about
            12,000 such quantities: about 10 s) and returned as a copy.
        """
        if self._diagnostics is None:
            self._diagnostics = self._compute_diagnostics()
        table = self._diagnostics.copy()
        table.attrs = dict(self._diagnostics.attrs)
        return table

    def _compute_diagnostics(self) -> pd.DataFrame:
        post = self.posterior
        names = [v for v in self.fit_info["diagnosed_variables"] if v in post]
        data = post[names]
        derived = self._derived_draws()
        data = data.assign(derived)
        names += list(derived)
        # quantities the model fixes (theta without an interval effect, the slowing of a model
        # without one) are not sampled: they have no diagnostics
        names = [v for v in names if not _constant(data[v])]
        data = data[names]
        # every element of every variable as rows of one (element, chain, draw) array, one call
        # per diagnostic for many elements (per variable, the xarray route took about 0.6 s of a
        # 2-s refit); the rows are views of the posterior, copied only a block at a time
        blocks = [data[v].transpose("chain", "draw", ...).values for v in names]
        n_chain, n_draw = blocks[0].shape[:2] if blocks else (0, 0)
        flat = [np.moveaxis(b.reshape(n_chain, n_draw, -1), -1, 0) for b in blocks]
        sizes = np.cumsum([0] + [f.shape[0] for f in flat])

        def rows_of(idx: np.ndarray) -> np.ndarray:
            """The (element, chain, draw) rows of the global element indices ``idx``."""
            var = np.searchsorted(sizes, idx, side="right") - 1
            return np.concatenate([flat[j][idx[var == j] - sizes[j]] for j in np.unique(var)]
                                  or [np.zeros((0, n_chain, n_draw))])

        finite = np.concatenate([np.isfinite(f).all(axis=(1, 2)) for f in flat]
                                or [np.zeros(0, dtype=bool)])
        rhat, bulk, tail = (np.full(sizes[-1], np.nan) for _ in range(3))
        if finite.any() and n_chain >= 2 and n_draw >= 4:
            # ArviZ's numbers, many elements per pass (slopeshift.convergence), in blocks so
            # that the working copies stay small (12,000 elements x 4,000 draws: 384 MB each)
            idx = np.flatnonzero(finite)
            for start in range(0, len(idx), _DIAGNOSTIC_BLOCK):
                part = idx[start:start + _DIAGNOSTIC_BLOCK]
                # tail ESS: the smaller of the 5% and 95% quantiles' ESS (Vehtari et al. 2021)
                rhat[part], bulk[part], tail[part] = convergence.diagnose(rows_of(part),
                                                                          prob=0.95)
        elif finite.any():  # one chain or very few draws: ArviZ's own checks and NaNs
            ary = rows_of(np.flatnonzero(finite))
            rhat[finite] = array_stats.rhat(ary)
            bulk[finite] = array_stats.ess(ary, method="bulk")
            tail[finite] = array_stats.ess(ary, method="tail", prob=0.95)
        rows = []
        for j, v in enumerate(names):
            part = slice(sizes[j], sizes[j + 1])
            rows.append({
                "parameter": v,
                "r_hat": _reduce(np.nanmax, rhat[part]),
                "ess_bulk": _reduce(np.nanmin, bulk[part]),
                "ess_tail": _reduce(np.nanmin, tail[part]),
            })
        table = pd.DataFrame(rows).set_index("parameter")
        table["ok"] = (table["r_hat"] <= RHAT_MAX) & (table["ess_bulk"] >= ESS_MIN) & (
            table["ess_tail"] >= ESS_MIN
        )
        div = self.idata["sample_stats"]["diverging"]
        n_div = int(div.values.sum())
        table.attrs = {
            "divergences": n_div,
            "draws": int(div.size),
            "ok": bool(table["ok"].all() and n_div == 0),
            "max_r_hat": float(table["r_hat"].max()),
            "min_ess_bulk": float(table["ess_bulk"].min()),
            "min_ess_tail": float(table["ess_tail"].min()),
        }
        return table

    def _derived_draws(self) -> dict[str, xr.DataArray]:
        """The slowing draws made after sampling, over the cells and patients that count."""
        from slopeshift.design import evaluable_cells
        from slopeshift.summaries import _cells, patient_slowing_draws

        post = self.posterior
        if "rho" not in post:
            return {}
        rho = post["rho"]
        cells = evaluable_cells(self.design).sel(patient=rho["patient"], cycle=rho["cycle"])
        out = {}
        if bool(cells.any()):
            # the cells that count, copied once from a view of the draws (stacking copied all)
            r = _cells(rho)
            keep = np.flatnonzero(cells.transpose("patient", "cycle").values)
            out["rho"] = xr.DataArray(r.reshape(*r.shape[:2], -1)[:, :, keep],
                                      dims=("chain", "draw", "cell"),
                                      coords={c: rho[c] for c in ("chain", "draw")})
        rho_i = patient_slowing_draws(self.idata)
        ok = np.isfinite(rho_i.values).all(axis=(0, 1))
        if ok.any():
            out["rho_patient"] = rho_i.isel(patient=np.flatnonzero(ok))
        return out

    def check(self) -> list[str]:
        """Warn in plain words about out-of-bounds diagnostics and unstable ratios.

        Returns
        -------
        list of str
            The messages warned (empty when everything is in bounds).
        """
        diag = self.diagnostics()
        msgs = []
        a = diag.attrs
        if a["divergences"]:
            msgs.append(
                f"{a['divergences']} of {a['draws']} draws diverged: the sampler could not "
                "explore part of the posterior, so probabilities may be biased. Refit with "
                "target_accept=0.95 (CLI: --target-accept 0.95); if divergences remain, "
                "report them."
            )
        bad_r = diag.index[diag["r_hat"] > RHAT_MAX].tolist()
        if bad_r:
            msgs.append(
                f"R-hat above {RHAT_MAX} for {bad_r} (max {a['max_r_hat']:.3f}): chains disagree;"
                " refit before citing any number: with more draws and target_accept=0.95 "
                "(CLI: --draws 2000 --target-accept 0.95), or, for trials under about 100 "
                "patients, with mass_matrix='low_rank' (CLI: --mass-matrix low_rank), which "
                "learns the correlated directions (at 200 patients it took 40 times as long)."
            )
        bad_e = diag.index[(diag["ess_bulk"] < ESS_MIN) | (diag["ess_tail"] < ESS_MIN)].tolist()
        if bad_e:
            msgs.append(
                f"effective sample size below {ESS_MIN} for {bad_e} (min bulk "
                f"{a['min_ess_bulk']:.0f}, tail {a['min_ess_tail']:.0f}): intervals and "
                "probabilities are imprecise; run more draws (CLI: --draws)."
            )
        categories = [ConvergenceWarning] * len(msgs)
        near = self.near_zero_slopes()
        d = self.design
        if ("decline_established" in d
                and self.config.get("flat_runin", "exclude") == "exclude"):
            # flat run-ins are already outside every count, reported by their slope change
            flat = set(d["patient"].values[~d["decline_established"].values].astype(str))
            near = [p for p in near if p not in flat]
        if near:
            msgs.append(
                f"patient(s) {', '.join(near)} have a pre-treatment slope that may be near zero "
                "(P(|slope| < the near-zero margin) > 10%): their ratio slowing is unstable; "
                "consider parameterization='additive' (CLI: --parameterization additive)."
            )
            categories.append(DataWarning)  # a property of the data, not of the sampler
        for m, category in zip(msgs, categories, strict=True):
            warnings.warn(m, category, skip_file_prefixes=_PACKAGE_DIR)
        return msgs

    def near_zero_slopes(self, margin: float | None = None, prob: float = 0.1) -> list[str]:
        """Treated patients whose pre-treatment slope is near zero with probability > ``prob``.

        Parameters
        ----------
        margin : float, optional
            Near-zero margin in outcome units/month; default 20% of the prior mean of
            ``mu_beta`` (0.2 points/month for ALSFRS-R, 0.5 %/month for FVC).
        prob : float, default 0.1

        Returns
        -------
        list of str
            Patient ids.
        """
        if margin is None:
            margin = 0.2 * max(abs(self.config["priors"]["mu_beta"].get("mu", 1.0)), 0.1)
        beta = self.posterior["beta_pre"]
        p_near = (np.abs(beta) < margin).mean(("chain", "draw"))
        treated = self.design["treated"].values
        return [str(p) for p, v, t in zip(beta["patient"].values, p_near.values, treated,
                                          strict=True) if t and v > prob]

    # ------------------------------------------------------------------ tables
    def _table(self, name: str, func: Callable[..., pd.DataFrame], *args) -> pd.DataFrame:
        """``func(self.idata, *args)``, computed once per fit and arguments, as a copy."""
        key = (name, *(tuple(a) if isinstance(a, (list, tuple, np.ndarray)) else a
                       for a in args))
        try:
            hash(key)
        except TypeError:  # unhashable arguments: not cached
            return func(self.idata, *args)
        if key not in self._tables:
            self._tables[key] = func(self.idata, *args)
        return self._tables[key].copy()

    def slowing(self, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
        """Per patient and cycle slowing rho_ik; see :func:`slopeshift.summaries.slowing_table`."""
        from slopeshift.summaries import slowing_table

        return self._table("slowing", slowing_table, threshold)

    def patients(self, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
        """Per patient overall slowing; see :func:`slopeshift.summaries.patient_table`."""
        from slopeshift.summaries import patient_table

        return self._table("patients", patient_table, threshold)

    def cycles(self, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
        """Per cycle population slowing and responders; see :func:`summaries.cycle_table`."""
        from slopeshift.summaries import cycle_table

        return self._table("cycles", cycle_table, threshold)

    def population(self, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
        """Population slowing; see :func:`slopeshift.summaries.population_table`."""
        from slopeshift.summaries import population_table

        return self._table("population", population_table, threshold)

    def responders(self, threshold: float | Sequence[float] = 0.25) -> pd.DataFrame:
        """Distribution of the number of responders; see :func:`summaries.responder_table`."""
        from slopeshift.summaries import responder_table

        return self._table("responders", responder_table, threshold)

    def arm_contrast(self) -> pd.DataFrame:
        """Treated minus control change of slope (points/month), per cycle and overall.

        See :func:`slopeshift.summaries.arm_contrast_table`; empty without a control arm.
        """
        from slopeshift.summaries import arm_contrast_table

        return self._table("arm_contrast", arm_contrast_table)

    def interval_effect(
        self, threshold: float | Sequence[float] = 0.25,
        intervals: Sequence[float] = (3.0, 4.0, 5.0, 6.0),
    ) -> pd.DataFrame:
        """Interval effect theta and predicted slowing; see :func:`summaries.interval_table`."""
        from slopeshift.summaries import interval_table

        return self._table("interval_effect", interval_table, threshold, intervals)

    def classical(self, threshold: float = 0.25) -> pd.DataFrame:
        """The classical per-patient analysis beside the Bayesian one.

        Parameters
        ----------
        threshold : float, default 0.25
            Responder threshold (fraction of the run-in rate of decline; 0.25 = 25% slower).

        Returns
        -------
        pandas.DataFrame
            Per patient: least-squares run-in and post-injection slopes (points/month), the
            classical reduction 1 - post / pre and responder call (reduction > threshold),
            the posterior mean slowing, P(slowing > threshold), the Bayesian call
            (P >= 0.9) and ``agreement``; see :func:`slopeshift.classical.side_by_side`.
        """
        from slopeshift.classical import classical_analysis, side_by_side

        result = classical_analysis(self.data, threshold=threshold)
        return side_by_side(result, self.patients(threshold), threshold)

    # ------------------------------------------------------------------ outputs
    def refit(self, **changes) -> FitResult:
        """Refit the same data with options changed; see :func:`slopeshift.sensitivity.refit`."""
        from slopeshift.sensitivity import refit

        return refit(self, **changes)

    def sensitivity(self, alternatives: Sequence[str] | None = None,
                    threshold: float = 0.25) -> pd.DataFrame:
        """The headline under named alternatives (jumps, sceptical and wide priors, no natural
        change), refitted with the same settings; see :func:`slopeshift.sensitivity.sensitivity`.
        """
        from slopeshift.sensitivity import sensitivity

        return sensitivity(self, alternatives, threshold)

    def power_scaling(self, var_names: Sequence[str] | None = None,
                      threshold: float = 0.05) -> pd.DataFrame:
        """Prior and likelihood sensitivity by power-scaling, without refitting; see
        :func:`slopeshift.sensitivity.power_scaling`."""
        from slopeshift.sensitivity import power_scaling

        return power_scaling(self, var_names, threshold)

    def loo(self, **kwargs) -> arviz_stats.ELPDData:
        """Leave-one-patient-out PSIS-LOO; see :func:`slopeshift.loo.loo`.

        The integrated log-likelihood it needs (every patient-level quantity integrated out)
        is computed on first use (about 10 s for 20 patients and 4,000 draws) and kept in the
        ``log_likelihood`` group as ``y_patient`` (saved with the fit).
        """
        from slopeshift.loo import loo

        return loo(self, **kwargs)

    def compare(self, ladder=None, others=None) -> pd.DataFrame:
        """Compare this fit with a ladder of nested models by leave-one-patient-out LOO.

        Parameters
        ----------
        ladder : mapping or sequence of str, optional
            Rungs to refit (:func:`slopeshift.loo.ladder`; default
            :data:`slopeshift.loo.LADDER`: no slowing, one common slowing, slowing per cycle,
            + interval effect, + natural change, natural change without slowing). Each refit
            costs about as much as this fit.
        others : mapping of str to FitResult, optional
            Fits of the same data to compare instead of (or besides, with ``ladder``) the
            ladder.

        Returns
        -------
        pandas.DataFrame
            :func:`slopeshift.loo.compare`'s table, best model first.
        """
        from slopeshift.loo import compare
        from slopeshift.loo import ladder as make_ladder

        fits = {}
        if ladder is not None or others is None:
            fits |= make_ladder(self, ladder)
        fits |= dict(others or {})
        if not any(f is self for f in fits.values()):
            fits = {"this fit": self} | fits
        return compare(fits)

    def report(self, out_dir: str | Path, threshold: float = 0.25, **kwargs) -> Path:
        """Write ``report.html`` (figures embedded) and the publication tables to ``out_dir``.

        See :func:`slopeshift.report.write_report`; returns the path of the HTML file.
        """
        from slopeshift.report import write_report

        return write_report(self, out_dir, threshold, **kwargs)

    def trajectory(self, patient: str, months: Sequence[float] | None = None) -> xr.DataArray:
        """Posterior draws of a patient's mean score (points) at ``months`` (chain, draw, month).

        See :func:`slopeshift.predict.trajectory_draws`.
        """
        from slopeshift.predict import trajectory_draws

        return trajectory_draws(self.idata, patient, months)

    def predictive(self, random_seed: int) -> xr.DataArray:
        """Replicated scores at the observed visits (chain, draw, visit), seeded.

        See :func:`slopeshift.predict.predictive_scores`.
        """
        from slopeshift.predict import predictive_scores

        bounds = self.data.spec.censor_bounds if self.config.get("censored") else None
        return predictive_scores(self.idata, random_seed, censor_bounds=bounds)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fit, data and configuration to one netCDF file.

        Parameters
        ----------
        path : str or Path
            File to write (``.nc``).

        Returns
        -------
        Path
        """
        path = Path(path)
        dt = self.idata.copy()
        for name, frame in (("visits", self.data.visits), ("injections", self.data.injections),
                            ("patients", self.data.patients.reset_index()),
                            ("dropped", self.data.dropped)):
            dt[f"data_{name}"] = xr.DataTree(_frame_to_dataset(frame))
        dt.attrs = dict(dt.attrs) | {
            "slopeshift_version": version("slopeshift"),
            "slopeshift_config": json.dumps(self.config, sort_keys=True),
            "slopeshift_config_hash": _config_hash(self.config),
            "slopeshift_fit_info": json.dumps(self.fit_info, sort_keys=True),
            "slopeshift_outcome": self.data.outcome,
            "slopeshift_time_kind": self.data.time_kind,
            "slopeshift_covariates": json.dumps(self.data.covariates),
            "slopeshift_notes": json.dumps(self.data.notes),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        dt.to_netcdf(path, engine="h5netcdf")
        return path

    @classmethod
    def load(cls, path: str | Path, model: SlopeShiftModel | None = None) -> FitResult:
        """Read a fit written by :meth:`save`.

        Parameters
        ----------
        path : str or Path
        model : SlopeShiftModel, optional
            If given, the file must have been fitted with the same configuration and priors;
            otherwise a ``ValueError`` says what differs.

        Returns
        -------
        FitResult
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        with xr.open_datatree(path, engine="h5netcdf") as raw:
            dt = raw.load().copy()
        attrs = dict(dt.attrs)
        if "slopeshift_config" not in attrs:
            raise ValueError(f"{path} was not written by slopeshift's FitResult.save.")
        config = json.loads(attrs["slopeshift_config"])
        if _config_hash(config) != attrs["slopeshift_config_hash"]:
            raise ValueError(f"{path}: the stored configuration does not match its hash; "
                             "the file was altered or damaged.")
        # fits saved before dropout="auto" stored the option only when it was "selection"
        config.setdefault("dropout", "ignore")
        if model is not None and _config_hash(model.to_config()) != _config_hash(config):
            diff = sorted(k for k in set(config) | set(model.to_config())
                          if config.get(k) != model.to_config().get(k))
            raise ValueError(f"{path} was fitted with a different model configuration "
                             f"(differs in {diff}).")
        frames = {}
        for name in ("visits", "injections", "patients", "dropped"):
            frames[name] = _dataset_to_frame(dt[f"data_{name}"].to_dataset())
            del dt[f"data_{name}"]
        patients = frames["patients"].set_index("patient")
        patients["treated"] = patients["treated"].astype(bool)
        data = TrialData(
            visits=frames["visits"], injections=frames["injections"], patients=patients,
            outcome=attrs["slopeshift_outcome"], time_kind=attrs["slopeshift_time_kind"],
            dropped=frames["dropped"], covariates=json.loads(attrs["slopeshift_covariates"]),
            notes=json.loads(attrs["slopeshift_notes"]),
        )
        fit_info = json.loads(attrs["slopeshift_fit_info"])
        dt.attrs = {k: v for k, v in attrs.items() if not k.startswith("slopeshift_")}
        return cls(idata=dt, data=data, config=config, fit_info=fit_info)

    def __repr__(self) -> str:
        f = self.fit_info
        return (f"FitResult({self.data.outcome}, {len(self.data.patients)} patients; "
                f"{f['sampler']}: {f['chains']} chains x {f['draws']} draws, seed "
                f"{f['random_seed']})")


def _reduce(fn, values: np.ndarray) -> float:
    """``fn`` over the finite values (NaN when there are none: a cell that does not exist)."""
    ok = values[np.isfinite(values)]
    return float(fn(ok)) if ok.size else float("nan")


def _constant(draws: xr.DataArray) -> bool:
    """Whether every element of ``draws`` takes one value in every chain and draw."""
    v = draws.transpose("chain", "draw", ...).values
    v = v.reshape(v.shape[0] * v.shape[1], -1)
    return bool(np.all((v == v[:1]) | (np.isnan(v) & np.isnan(v[:1]))))


def _frame_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    ds = xr.Dataset(coords={"table_row": np.arange(len(frame))})
    for c in frame.columns:
        values = frame[c]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            values = values.astype(str).to_numpy(dtype=str)
        ds[c] = ("table_row", np.asarray(values))
    ds.attrs["columns"] = json.dumps(list(frame.columns))
    return ds


def _dataset_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    cols = json.loads(ds.attrs["columns"])
    return pd.DataFrame({c: ds[c].values for c in cols})
