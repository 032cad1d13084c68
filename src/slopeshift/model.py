"""The hierarchical piecewise-linear model of slowing across treatment cycles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from slopeshift.data import TrialData
from slopeshift.design import INTERVALS, build_design
from slopeshift.priors import Prior, resolve_priors

if TYPE_CHECKING:
    from slopeshift.fit import FitResult

__all__ = ["SlopeShiftModel"]

_PARAMETERIZATIONS = ("ratio", "additive")
_LIKELIHOODS = ("normal", "student_t")


class SlopeShiftModel:
    r"""Hierarchical Bayesian piecewise-linear model of slowing after each treatment cycle.

    For patient i with injections at months tau_i1 = 0 < tau_i2 < ... (months since the first
    injection) the expected score at month t is

    .. math::

        \mu_i(t) = \alpha_i + \beta_{i0} \min(t, 0)
                   + \sum_k \beta_{ik}\, \mathrm{clip}(t - \tau_{ik}, 0, L_{ik})
                   \; [+ \sum_k J_{ik} 1(t \ge \tau_{ik})]

    with alpha_i the score at the first injection (points), beta_i0 the pre-treatment slope
    (points/month) and beta_ik the slope during cycle k, whose length L_ik runs to the next
    injection (the last cycle: to the patient's last visit).

    **Ratio parameterisation** (default): beta_ik = beta_i0 (1 - rho_ik), where rho_ik is the
    fraction by which decline slows in cycle k (0 = no change, 0.25 = 25% slower, 1 = halted,
    > 1 = improvement), and

    .. math::

        \rho_{ik} = \rho_k + \theta (g_{ik} - g_{ref}) + \gamma^\top x_i + u_i + e_{ik},\quad
        u_i \sim N(0, sd_{patient}),\; e_{ik} \sim N(0, sd_{patient\_cycle})

    g_ik is the injection-interval covariate (months), x_i are standardised patient covariates
    (so rho_k is the slowing of an average patient at the reference interval).
    **Additive**: beta_ik = beta_i0 + delta_ik (points/month) with the same hierarchy on delta;
    slowing is then derived as delta_ik / abs(beta_i0).

    Pre-treatment: alpha_i ~ N(mu_alpha, sd_alpha), beta_i0 ~ N(mu_beta, sd_beta). Likelihood:
    Normal or Student-t with SD sigma, optionally censored at the scale's floor and ceiling.

    **Parameterisation for sampling.** alpha_i and beta_i0 are centred: every patient has many
    visits, so the data identify them much better than the population does, and the centred
    form is then the well-conditioned one. u_i, e_ik (and J_ik) are non-centred: a patient-cycle
    slowing is weakly identified (a cycle of 3-6 months of noisy scores), so the prior dominates
    and the non-centred form avoids the funnel. The cycle means rho_k have independent priors
    (no population mean plus offsets: that is a ridge, and a hierarchy over 4 means is a funnel).
    The product beta_i0 (1 - rho_ik) has a saddle at beta_i0 = 0; chains start alpha_i and
    beta_i0 at each patient's least-squares run-in fit, without jitter, so no chain starts near
    the saddle or on the wrong side of it. Sampling health is benchmarked in
    ``benchmarks/bench_geometry.py``.

    Slowing is relative to each patient's own run-in: without a control arm, regression to the
    mean and natural deceleration of decline can look like a treatment effect.

    Parameters
    ----------
    data : TrialData
        Validated trial data.
    parameterization : {"ratio", "additive"}, default "ratio"
        Treatment-effect parameterisation.
    interval : str, default "cycle_length"
        Injection-interval covariate g_ik (months): ``"cycle_length"``, ``"since_previous"`` or
        a numeric column of the injections table. See :func:`slopeshift.design.build_design`.
    interval_ref : float, default 3.0
        Reference interval g_ref, months: rho_k is the slowing at this interval.
    covariates : sequence of str, optional
        Patient covariates (columns of ``data.patients``) acting on the slowing; standardised.
    jump : bool, default False
        Add an acute jump J_ik (points) at each injection.
    likelihood : {"normal", "student_t"}, default "normal"
        Student-t is robust to outlying scores.
    censored : bool, default False
        Treat scores at the scale's floor/ceiling (0 and 48 for ALSFRS-R) as censored.
    priors : mapping, optional
        ``{name: Prior}`` replacing defaults key by key; see :func:`slopeshift.default_priors`.
    """

    def __init__(
        self,
        data: TrialData,
        *,
        parameterization: str = "ratio",
        interval: str = "cycle_length",
        interval_ref: float = 3.0,
        covariates: Sequence[str] | None = None,
        jump: bool = False,
        likelihood: str = "normal",
        censored: bool = False,
        priors: Mapping[str, Prior | Mapping] | None = None,
        patient_effect: str = "noncentred",
    ):
        if not isinstance(data, TrialData):
            raise TypeError("data must be a TrialData (use TrialData.from_frames or from_csv).")
        if parameterization not in _PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {_PARAMETERIZATIONS}, not {parameterization!r}."
            )
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, not {likelihood!r}.")
        if interval not in INTERVALS and interval not in data.injections.columns:
            raise ValueError(
                f"interval must be one of {INTERVALS} or a column of the injections table; "
                f"got {interval!r}."
            )
        if not data.patients["treated"].any():
            raise ValueError("no patient received an injection: there is no cycle to analyse.")
        self.data = data
        self.config = {
            "parameterization": parameterization,
            "interval": interval,
            "interval_ref": float(interval_ref),
            "covariates": list(covariates or []),
            "jump": bool(jump),
            "likelihood": likelihood,
            "censored": bool(censored),
            "patient_effect": patient_effect,
        }
        self.design = build_design(data, interval=interval, covariates=covariates)
        self.design.attrs.update(
            interval_ref=float(interval_ref), parameterization=parameterization
        )
        self.priors = resolve_priors(
            data.outcome, parameterization, priors, float(np.mean(self.design["y"].values))
        )
        self._pymc_model: pm.Model | None = None
        self._compiled: dict = {}

    # ------------------------------------------------------------------ building
    def to_config(self) -> dict:
        """The model's full configuration (options and priors) as JSON-friendly data."""
        return self.config | {"priors": {k: p.to_dict() for k, p in self.priors.items()}}

    @property
    def pymc_model(self) -> pm.Model:
        """The PyMC model (built once, on first use; building never samples)."""
        if self._pymc_model is None:
            self._pymc_model = self._build()
        return self._pymc_model

    def _build(self) -> pm.Model:
        d = self.design
        cfg = self.config
        pr = self.priors
        ratio = cfg["parameterization"] == "ratio"
        p_idx = d["patient_index"].values
        has = d["has_cycle"].values
        n_cov = d.sizes["covariate"]
        g = d["interval"].values
        g_c = np.where(has & np.isfinite(g), g - cfg["interval_ref"], 0.0)
        weights = design_weights(d).values

        coords = {
            "patient": d["patient"].values,
            "cycle": d["cycle"].values,
            "visit": d["visit"].values,
        }
        if n_cov:
            coords["covariate"] = d["covariate"].values
        with pm.Model(coords=coords) as model:
            mu_alpha = pr["mu_alpha"].create("mu_alpha")
            sd_alpha = pr["sd_alpha"].create("sd_alpha")
            mu_beta = pr["mu_beta"].create("mu_beta")
            sd_beta = pr["sd_beta"].create("sd_beta")
            alpha = pm.Normal("alpha", mu_alpha, sd_alpha, dims="patient")
            beta_pre = pm.Normal("beta_pre", mu_beta, sd_beta, dims="patient")

            sd_patient = pr["sd_patient"].create("sd_patient")
            sd_pc = pr["sd_patient_cycle"].create("sd_patient_cycle")
            theta = pr["theta"].create("theta")
            # Cycle means at the reference interval (rho_k) and theta are nearly collinear when
            # cycles differ in typical length (3, 3, 5, 6 months). Sample instead the cycle mean
            # at the cycle's own average interval, which the data identify separately from
            # theta, and put the prior on rho_k = that - theta * (mean g_k - g_ref): a shift
            # with unit Jacobian, so the posterior is exactly the model's.
            effect_key = "rho_cycle" if ratio else "delta_cycle"
            g_mean = np.where(has.any(axis=0), (g_c * has).sum(axis=0) / np.maximum(
                has.sum(axis=0), 1), 0.0)
            eff_at_mean = pm.Flat(f"{effect_key}_at_mean_interval", dims="cycle")
            eff_k = pm.Deterministic(effect_key, eff_at_mean - theta * g_mean, dims="cycle")
            pm.Potential(f"{effect_key}_prior", pm.logp(pr[effect_key].as_dist(), eff_k).sum())
            z_cycle = pm.Normal("z_patient_cycle", 0.0, 1.0, dims=("patient", "cycle"))
            eff = eff_at_mean[None, :] + theta * (g_c - g_mean) + sd_pc * z_cycle
            if n_cov:
                x = d["covariate_values"].values
                sd_x = x.std(axis=0)
                const = [c for c, s in zip(d["covariate"].values, sd_x, strict=True) if s == 0]
                if const:
                    raise ValueError(f"covariate(s) {const} take one value for every patient.")
                x_std = (x - x.mean(axis=0)) / sd_x
                gamma = pr["gamma"].create("gamma", dims="covariate")
                eff = eff + pt.dot(x_std, gamma)[:, None]

            # The patient's own responsiveness u_i, sampled on the slope scale (points/month):
            # shift_i = -beta_i0 * u_i ~ N(0, |beta_i0| sd_patient) is the same prior as
            # u_i ~ N(0, sd_patient), but the data identify the shift of the patient's post-
            # treatment slope directly, so the centred form has no banana with beta_i0.
            if cfg["patient_effect"] == "slope":
                scale = pt.abs(beta_pre) * sd_patient if ratio else sd_patient
                shift = pm.Normal("patient_shift", 0.0, scale, dims="patient")
                u = -shift / beta_pre if ratio else shift
            elif cfg["patient_effect"] == "centred":
                u = pm.Normal("u", 0.0, sd_patient, dims="patient")
                shift = -beta_pre * u if ratio else u
            else:
                z_patient = pm.Normal("z_patient", 0.0, 1.0, dims="patient")
                u = sd_patient * z_patient
                shift = -beta_pre * u if ratio else u
            pm.Deterministic("u_patient", u, dims="patient")

            if ratio:
                slope = beta_pre[:, None] * (1.0 - eff) + shift[:, None]
                rho = eff + u[:, None]
            else:
                slope = beta_pre[:, None] + eff + shift[:, None]
                rho = (eff + u[:, None]) / pt.abs(beta_pre)[:, None]
            nan = np.float64(np.nan)
            pm.Deterministic("slope", pt.where(has, slope, nan), dims=("patient", "cycle"))
            pm.Deterministic("rho", pt.where(has, rho, nan), dims=("patient", "cycle"))

            # population: patient-month weighted slowing, and a new patient's predictive slowing
            if ratio:
                rho_k = eff_k
            else:
                rho_k = pm.Deterministic("rho_cycle", eff_k / pt.abs(mu_beta), dims="cycle")
            pm.Deterministic("rho_bar", pt.dot(rho_k, weights))
            z_new = pm.Normal("z_new_patient", 0.0, 1.0, shape=2)
            z_new_cycle = pm.Normal("z_new_cycle", 0.0, 1.0, dims="cycle")
            new_eff = pt.dot(eff_k + sd_pc * z_new_cycle, weights) + sd_patient * z_new[0]
            if ratio:
                pm.Deterministic("rho_new", new_eff)
            else:
                beta_new = mu_beta + sd_beta * z_new[1]
                pm.Deterministic("rho_new", new_eff / pt.abs(beta_new))

            x_pre = d["x_pre"].values
            x_cyc = d["x_cycle"].values
            mu = alpha[p_idx] + beta_pre[p_idx] * x_pre + (slope[p_idx] * x_cyc).sum(axis=1)
            if cfg["jump"]:
                jump_k = pr["jump"].create("jump", dims="cycle")
                sd_jump = pr["sd_jump"].create("sd_jump")
                z_jump = pm.Normal("z_jump", 0.0, 1.0, dims=("patient", "cycle"))
                J = jump_k[None, :] + sd_jump * z_jump
                pm.Deterministic("jump_patient", pt.where(has, J, nan), dims=("patient", "cycle"))
                mu = mu + (J[p_idx] * d["x_jump"].values).sum(axis=1)

            sigma = pr["sigma"].create("sigma")
            if cfg["likelihood"] == "student_t":
                nu = pr["nu"].create("nu")
                dist = pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma)
            else:
                dist = pm.Normal.dist(mu=mu, sigma=sigma)
            y = d["y"].values
            if cfg["censored"]:
                lo, hi = self.data.spec.censor_bounds
                pm.Censored("y", dist, lower=lo, upper=hi, observed=y, dims="visit")
            else:
                model.register_rv(dist, "y", observed=y, dims=("visit",))
        return model

    def initial_values(self) -> dict[str, np.ndarray]:
        """Starting values: each patient's least-squares run-in fit, shrunk where it is missing.

        Returns
        -------
        dict
            ``alpha`` (points), ``beta_pre`` (points/month), ``mu_alpha``, ``mu_beta``. Patients
            with fewer than 2 run-in visits start at the population value.
        """
        d = self.design
        slope = d["runin_slope"].values
        icpt = d["runin_intercept"].values
        mu_b = float(np.nanmedian(slope)) if np.isfinite(slope).any() else -1.0
        mu_a = float(np.nanmean(icpt)) if np.isfinite(icpt).any() else float(d["y"].mean())
        beta0 = np.where(np.isfinite(slope), slope, mu_b)
        # keep starts on the declining side unless the run-in clearly says otherwise
        beta0 = np.clip(beta0, -10.0 * max(abs(mu_b), 0.1), 10.0 * max(abs(mu_b), 0.1))
        return {
            "alpha": np.where(np.isfinite(icpt), icpt, mu_a),
            "beta_pre": beta0,
            "mu_alpha": np.asarray(mu_a),
            "mu_beta": np.asarray(mu_b),
        }

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        *,
        random_seed: int | None = None,
        sampler: str = "nutpie",
        cores: int | None = None,
        target_accept: float | None = None,
        progressbar: bool = True,
        check: bool = True,
    ) -> FitResult:
        """Sample the posterior.

        Parameters
        ----------
        draws, tune, chains : int
            Posterior draws per chain, tuning steps per chain, number of chains.
        random_seed : int, optional
            Seed; the same data, options and seed give identical numbers.
        sampler : {"nutpie", "pymc", "numpyro"}, default "nutpie"
            NUTS implementation. nutpie compiles the model once per SlopeShiftModel and reuses
            it. ``"numpyro"`` needs the ``jax`` extra (``pip install slopeshift[jax]``).
        cores : int, optional
            Chains run in parallel on this many cores (default: all).
        target_accept : float, optional
            Raise (e.g. 0.95) if divergences are reported.
        progressbar : bool, default True
            Show a progress bar while sampling.
        check : bool, default True
            Warn (:class:`slopeshift.ConvergenceWarning`) when diagnostics are out of bounds.

        Returns
        -------
        FitResult
        """
        from slopeshift.fit import sample_model

        return sample_model(
            self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
            sampler=sampler, cores=cores, target_accept=target_accept,
            progressbar=progressbar, check=check,
        )

    def __repr__(self) -> str:
        o = self.data.overview()
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return (f"SlopeShiftModel({o['patients']} patients, {o['visits']} visits, "
                f"{o['injections']} injections; {opts})")


def design_weights(design: xr.Dataset) -> xr.DataArray:
    """Patient-months observed in each cycle (the weights of rho_bar), normalised to sum to 1."""
    w = (design["cycle_length"] * design["observed"]).sum("patient")
    if float(w.sum()) <= 0:
        w = design["has_cycle"].sum("patient").astype(float)
    return w / w.sum()

