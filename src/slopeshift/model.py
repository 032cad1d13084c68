"""The hierarchical piecewise-linear model of slowing across treatment cycles."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from slopeshift.data import ALSFRS_DOMAINS, TrialData
from slopeshift.design import build_design, design_weights, given_interval_shift
from slopeshift.errors import _PACKAGE_DIR, DataWarning
from slopeshift.marginal import draw_effects as marginal_draws
from slopeshift.marginal import (
    low_rank_terms,
    patient_moments,
    residual_products,
    solve_lower,
    solve_upper,
)
from slopeshift.priors import DROPOUT_KEYS, Prior, resolve_priors

if TYPE_CHECKING:
    import pandas as pd

    from slopeshift.fit import FitResult

__all__ = ["SlopeShiftModel"]

_PARAMETERIZATIONS = ("ratio", "additive")
_LIKELIHOODS = ("normal", "student_t")
_SLOWINGS = ("per_cycle", "common", "none")
#: Floor of an ALSFRS-R domain subscore (points; three items of 0-4), at which the domain
#: model censors it. The ceiling of 12 is not censored: a domain at 12 is a region the disease
#: has not reached, not one declining out of sight (censoring it assumed hidden decline and
#: credited slowing on simulated no-effect trials; docs/natural-history.md).
DOMAIN_FLOOR = 0.0


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
    above 1 = improvement), and

    .. math::

        \rho_{ik} = \rho_k + \theta (g_{ik} - g_{ref}) + \gamma^\top x_i + u_i + e_{ik},\quad
        u_i \sim N(0, sd_{patient}),\; e_{ik} \sim N(0, sd_{patient\_cycle})

    g_ik is the injection-interval covariate (months), x_i are standardised patient covariates
    (so rho_k is the slowing of an average patient at the reference interval).
    **Additive**: beta_ik = beta_i0 + delta_ik (points/month) with the same hierarchy on delta;
    slowing is then derived as delta_ik / abs(beta_i0).

    Pre-treatment: alpha_i ~ N(mu_alpha, sd_alpha), beta_i0 ~ N(mu_beta, sd_beta). Likelihood:
    Normal or Student-t with SD sigma, optionally censored at the scale's floor and ceiling.

    **Natural change** (``drift=True``, the default): beta_i0 is the patient's persistent
    natural rate; the run-in slope is beta_i0 + d_i0 and the slope of cycle k is
    n_ik (1 - rho_ik) + d_ik, where n_ik = beta_i0 + kappa s_ik (+ a_k with a control arm) is
    the natural rate (kappa the acceleration per month over the s_ik months from the middle of
    the run-in to the middle of the cycle; a_k the natural change the controls measure) and
    d ~ N(0, sd_drift) the drift of each period. Control and external patients carry no
    rho. The drift is linear-Gaussian given the rates, so it is integrated out exactly with
    the slowing effects; enrolment on the run-in enters as a selection term.

    **How it is sampled.** With the Normal likelihood (no censoring) the patient and
    patient-cycle effects u_i and e_ik, and the acute jumps J_ik, enter the scores linearly with
    Normal priors, so they are integrated out exactly (:mod:`slopeshift.marginal`): NUTS
    samples only alpha_i, beta_i0 and the population parameters, and after sampling (u_i,
    e_ik, J_ik) are drawn from their exact
    conditional posterior given each draw. This removes both the funnel of the effects against
    their SDs and the hyperbolic trade-off between beta_i0 and rho_ik. alpha_i is centred (each
    patient has many visits, so the data identify it better than the population does); beta_i0
    is sampled at its approximate conditional posterior given the population parameters,
    beta_i0 = c_i + s_i beta_pre_z (prior on beta_i0, Jacobian sum(log s_i) added), so that the
    population parameters mix without dragging every rate along. With latent effects or
    domains it is partly centred, sampled as beta_pre_pc ~ N(lambda_i mu_beta,
    sd_beta^lambda_i) with beta_i0 = mu_beta + sd_beta^(1 - lambda_i) (beta_pre_pc - lambda_i
    mu_beta) ~ N(mu_beta, sd_beta), lambda_i in [0, 1] from how well the patient's own scores
    pin the rate down (the drift leaves it only partly identified). The cycle means rho_k have
    independent priors (a
    population mean plus offsets is a ridge; a hierarchy over 4 means is a funnel), and are
    sampled at each cycle's own average interval, which the data separate from theta (the prior
    stays on rho_k: a shift with unit Jacobian). Chains start alpha_i and beta_i0 at each
    patient's least-squares run-in fit, without jitter, away from the saddle at beta_i0 = 0
    (sd_beta at its prior median, unjittered, so that beta_pre_pc maps back to those fits; in
    the marginal model beta_i0 starts a tenth of a conditional SD off its conditional mean).
    With Student-t or censoring the effects are sampled as latent non-centred parameters
    (``effects="latent"``). Sampling health is benchmarked in ``benchmarks/bench_geometry.py``.

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
    effects : {"marginal", "latent"}, optional
        How u_i and e_ik are handled: integrated out exactly (the default where possible:
        Normal likelihood, no censoring; jumps too) or sampled as latent parameters.
    drift : bool, default True
        Natural change apart from treatment: each patient's rate drifts from period to period
        (SD ``sd_drift``, points/month) and changes systematically (``acceleration``,
        points/month per month), with informative priors from published natural history; the
        slowing rho_ik is then relative to the natural rate. ``False`` assumes the run-in rate
        would have continued unchanged (the earlier model; it credits drift and regression to
        the mean to treatment).
    enrolment : float, "auto" or None, default "auto"
        How patients were enrolled on their run-in: the least-squares run-in slope (units/month)
        below which they were enrolled (e.g. -0.5), ``"auto"`` (the most selective rule the
        data allow: below the slowest enrolled patient's run-in slope) or None (all-comers).
        The likelihood is conditioned on it, so that the population of persistent rates is the
        screened one (this removes regression to the mean). External patients are exempt.
    floors : {"exclude", "adjust", "include"}, default "exclude"
        Floor effects of ALSFRS-R given as items (totals are unaffected). ``"adjust"``: each
        cycle's natural rate is scaled by the share of the patient's run-in decline that the
        items still above 0 can carry (:func:`slopeshift.floors.floor_factors`), so that a total
        flattening because items reached 0 is not read as slowing. ``"exclude"`` also keeps
        cycles in which a whole domain sat at its lasting floor out of the slowing and of
        responder counts, and gives their slope a vague deviation of its own (SD three times
        the median run-in rate), so that they do not inform the natural change either.
        ``"include"`` does neither (the earlier model).
    planned_interval : float, optional
        The protocol's planned interval between injections (months), used as g_ik for open
        last cycles; without it they inform their cycle's mean but not theta.
    flat_runin : {"exclude", "include"}, default "exclude"
        Patients whose run-in does not establish decline (the run-in least-squares slope's
        one-sided 95% upper bound is not below 0; the design's ``decline_established``): a
        slowing is a fraction of a decline, and for them the ratio rests on the population's
        decline, not on theirs. ``"exclude"`` keeps them out of responder counts and of the
        population weights and lists them separately (status "flat run-in", with their slope
        change in points/month); they still inform the model. ``"include"`` counts them.
    slowing : {"per_cycle", "common", "none"}, default "per_cycle"
        The population slowing: one mean per cycle (rho_k), one mean shared by every cycle,
        or no treatment effect at all (rho_ik = 0; the rungs of :meth:`FitResult.compare`'s
        model ladder). With ``"none"`` the patient and patient-cycle SDs and theta are 0.
    interval_effect : bool, default True
        Whether the slowing depends on the injection interval (theta); ``False`` fixes
        theta at 0.
    domains : bool, default False
        Model the four ALSFRS-R domains (bulbar, fine motor, gross motor, respiratory; 0-12 points
        each) instead of the total; needs the 12 items. **Experimental**: checked on few simulated
        trials (docs "Natural history"), and earlier forms of it credited natural slowing to
        treatment; use it beside the default model, not alone. Each domain d has its own intercept
        alpha_id and carries a share w_id of the patient's latent decline (the shares sum to 1;
        log-shares vary between patients with SD ``sd_share``; a domain at 0 at every visit has
        share 0): its expected score is alpha_id + w_id (beta_i0 min(t, 0) + sum_k f_ikd beta_ik
        clip(t - tau_ik, 0, L_ik) + eps_v), with eps_v ~ N(0, sigma_visit) a deviation of visit v
        shared by the domains (a good or bad day) and f_ikd the share of the domain's run-in decline
        its items still above 0 can carry (:func:`slopeshift.floors.domain_floor_factors`; 1 with
        ``floors="include"``), observed with noise SD ``sigma_domain[d]`` of its own and **censored
        at 0**. A domain at 0 then says only that its latent score is at or below 0, so a total that
        flattens because a domain reached its floor is not read as slowing; the slopes, slowing and
        drift are those of the latent total. The effects are latent (no exact integration under
        censoring), so fitting takes minutes, not seconds. ``jump`` is not available with it;
        ``floors="exclude"`` still keeps cycles in which a whole domain sat at its lasting floor out
        of responder counts.
    dropout : {"auto", "selection", "ignore"}, default "auto"
        Patients who leave. ``"ignore"``: their missing visits are missing at random.
        ``"selection"``: a shared-parameter selection model of informative dropout. A patient
        followed for less than 80% of the arm's longest follow-up (its 90th percentile; months
        after the first injection, :func:`slopeshift.classical.followed_for_less`) left with
        probability Phi(``dropout_intercept`` + ``dropout_slope`` (b_i - b_ref)), b_i the
        patient's slope in their last cycle (units/month) and b_ref the median run-in slope;
        b_i is integrated out exactly over its conditional posterior given the scores.
        Without it, fast decliners who leave make the later cycles of a single-arm trial look
        slowed (docs "Natural history"). Needs the marginal model.
        ``"auto"``: ``"selection"`` in a single-arm analysis (no injected patient outside the
        treated arm: no sham-injected controls, no external cohort with sham times) of the
        marginal model in which some injected patient was followed for less; ``"ignore"``
        otherwise (with controls the comparison measures dropout's effect in both arms; with
        nobody followed for less there is nothing to model). ``config["dropout"]`` holds the
        choice made and ``config["dropout_auto"]`` says it was automatic.
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
        effects: str | None = None,
        drift: bool = True,
        enrolment: float | str | None = "auto",
        floors: str = "exclude",
        planned_interval: float | None = None,
        flat_runin: str = "exclude",
        slowing: str = "per_cycle",
        interval_effect: bool = True,
        domains: bool = False,
        dropout: str = "auto",
    ):
        if not isinstance(data, TrialData):
            raise TypeError("data must be a TrialData (use TrialData.from_frames or from_csv).")
        if parameterization not in _PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {_PARAMETERIZATIONS}, not {parameterization!r}."
            )
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, not {likelihood!r}.")
        if not data.patients["treated"].any():
            raise ValueError("no patient received an injection: there is no cycle to analyse.")
        arm = data.patients["arm"] if "arm" in data.patients else None
        if arm is not None and not (data.patients["treated"] & (arm == "treated")).any():
            warnings.warn(
                "no patient of the treated arm received an injection: the model estimates "
                "natural history only, and every treatment quantity is its prior "
                "(see NaturalHistory.from_cohort for untreated cohorts).",
                DataWarning, skip_file_prefixes=_PACKAGE_DIR,
            )
        if domains:
            _check_domains(data, jump=jump, effects=effects)
        self.data = data
        self.config = {
            "parameterization": parameterization,
            "interval": interval,
            "interval_ref": float(interval_ref),
            "covariates": list(covariates or []),
            "jump": bool(jump),
            "likelihood": likelihood,
            "censored": bool(censored),
            "effects": _choose_effects(effects, likelihood, censored or bool(domains), jump),
            "drift": bool(drift),
            "enrolment": _check_enrolment(enrolment),
            "floors": floors,
            "planned_interval": None if planned_interval is None else float(planned_interval),
            "flat_runin": flat_runin,
            "slowing": slowing,
            "interval_effect": bool(interval_effect),
        }
        if domains:  # stored only when on, so that configs of total models stay as they were
            self.config["domains"] = True
        if dropout not in ("auto", "ignore", "selection"):
            raise ValueError(
                f"dropout must be 'auto', 'selection' or 'ignore', not {dropout!r}.")
        marginal = _is_marginal(self.config["effects"], bool(domains))
        if dropout == "selection" and not marginal:
            raise ValueError(
                "dropout='selection' integrates each patient's last-cycle slope over its "
                "exact conditional posterior: it needs the marginal model (Normal "
                "likelihood, no censoring, totals; not domains=True or "
                "effects='latent').")
        if dropout == "auto":
            dropout = _auto_dropout(data, marginal)
            self.config["dropout_auto"] = True
            given = sorted(set(priors or {}) & set(DROPOUT_KEYS))
            if given and dropout == "ignore":
                raise ValueError(
                    f"prior(s) {given} belong to the selection model of dropout, which "
                    "dropout='auto' did not choose for these data and options (it models "
                    "dropout only in single-arm analyses of the marginal model in which some "
                    "injected patient was followed for less); pass dropout='selection' to "
                    "use them.")
        self.config["dropout"] = dropout
        if slowing not in _SLOWINGS:
            raise ValueError(f"slowing must be one of {_SLOWINGS}, not {slowing!r}.")
        if floors not in ("exclude", "adjust", "include"):
            raise ValueError(f"floors must be 'exclude', 'adjust' or 'include', not {floors!r}.")
        if flat_runin not in ("exclude", "include"):
            raise ValueError(f"flat_runin must be 'exclude' or 'include', not {flat_runin!r}.")
        self.design = build_design(data, interval=interval, covariates=covariates,
                                   planned_interval=planned_interval)
        self.design.attrs.update(
            interval_ref=float(interval_ref), parameterization=parameterization, floors=floors,
            flat_runin=flat_runin,
        )
        if domains:
            self.design["domain_floor_factor"] = _domain_floor_array(data, self.design)
        self.priors = resolve_priors(
            data.outcome, parameterization, priors, float(np.mean(self.design["y"].values)),
            natural=bool(drift), domains=bool(domains), dropout=dropout == "selection",
        )
        self._pymc_model: pm.Model | None = None
        self._compiled: dict = {}
        self._consts: dict | None = None
        self._moments_cache: tuple | None = None
        # graph-building state of _build: the packed data inputs and the priors made from them
        self._pack: _Pack | None = None
        self._shared_priors: dict = {}

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

    def _constants(self) -> dict:
        """Plain NumPy pieces of the design used by the graph and by post-sampling draws."""
        if self._consts is not None:
            return self._consts
        d = self.design
        has = d["has_cycle"].values
        effect = d["effect"].values
        g = d["interval"].values
        known = has & np.isfinite(g)
        g_c = np.where(known, g - self.config["interval_ref"], 0.0)
        # the cycle's mean interval over the patients with an effect and a known interval; a
        # cell without one sits at its cycle's mean (it informs the mean, not theta)
        g_mean = given_interval_shift(d, self.config["interval_ref"]).fillna(0.0).values
        x = d["covariate_values"].values
        sd_x = x.std(axis=0)
        const = [c for c, v in zip(d["covariate"].values, sd_x, strict=True) if v == 0]
        if const:
            raise ValueError(f"covariate(s) {const} take one value for every patient.")
        p_idx = d["patient_index"].values
        x_cyc = d["x_cycle"].values
        x_pre = d["x_pre"].values
        n_p = d.sizes["patient"]
        # exposures of the slopes that carry random deviations: the cycles, then the run-in
        # exposures of the effects integrated out: the cycles, the run-in and (with jumps) the
        # step from each injection on
        x_all = np.column_stack([x_cyc, x_pre] + ([d["x_jump"].values] if self.config["jump"]
                                                  else []))
        cell = has & effect[:, None]
        control = has & ~effect[:, None]  # cycles of controls (sham injections, external)
        # controls beside treated patients: the two arms' changes get the same model
        comparison = bool(cell.any() and control.any())
        floor = has & d["floor"].values & (effect[:, None] | comparison)
        if self.config["floors"] == "exclude":
            cell = cell & ~d["floor"].values
            control = control & ~d["floor"].values
        self._consts = {
            "has": has,
            "effect": cell.astype(float),  # patient x cycle: the cell carries a treatment effect
            # the cells whose slope carries the patient and patient-cycle deviations u_i, e_ik
            # (loaded on the natural rate): the treated cells and, with controls beside them,
            # the controls' too (mean 0: no slowing), so that both arms' changes after the
            # first injection have the same form and the slowing is only the difference of
            # their means (an untreated cohort alone keeps plain drift: NaturalHistory)
            "deviation": (cell | (control & comparison)).astype(float),
            "comparison": comparison,
            "g_dev": np.where(known, g_c - g_mean, 0.0),  # from the cycle's mean interval
            "g_mean": g_mean,
            "x_std": (x - x.mean(axis=0)) / np.where(sd_x > 0, sd_x, 1.0),
            "weights": design_weights(d).values,
            "p_idx": p_idx,
            "x_pre": x_pre,
            "x_cycle": x_cyc,
            "x_jump": d["x_jump"].values,
            "y": d["y"].values,
            "x_all": x_all,
            "n_visits": np.bincount(p_idx, minlength=n_p).astype(float),
            "natural_time": d["natural_time"].values,
            # the share of the run-in decline still possible (item floors); 1 = none reached
            # (the domain model has a factor per domain instead: "domain_floor")
            "floor_factor": (np.ones(has.shape) if self.config["floors"] == "include"
                             or self.domains
                             else np.where(has, d["floor_factor"].values, 1.0)),
            # lasting-floor cells (floors="exclude"): their slope gets a vague deviation of its
            # own (SD floor_sd), so that a total stuck at a domain floor says next to nothing
            # about the natural change, the drift or the slowing of the other cells
            # (with controls beside the treated, the controls' too: else a control's flattening
            # at a floor would inform the natural change that the treated are measured against)
            "floor_cell": floor.astype(float)
            if self.config["floors"] == "exclude" else np.zeros(has.shape),
            "floor_sd": 3.0 * self._median_rate(),
            "controls": bool((has & ~effect[:, None]).any()),
            # the rate at which the controls' natural change a_k is measured (natural_ratio)
            "rate_ref": self._median_slope(),
            "accel_shift": self._accel_shift(cell),
            "shift_unit": self._shift_unit(),
            # the ratio form's shear (_at_mean): the treated patients' mean run-in rate and
            # mean months from the run-in's middle, per cycle
            **self._shear_constants(cell),
            # slowing="common": the cycles' average mean interval, and the weights of the
            # cycles with an effect in the average shear (see _common_shift)
            "g_bar": float(g_mean[cell.any(axis=0)].mean()) if cell.any() else 0.0,
            "shear_w": cell.any(axis=0) / max(int(cell.any(axis=0).sum()), 1),
            "n_eff": float(cell.sum()),
            # only the selection model of dropout reads them
            **(self._dropout_constants(has) if self.config.get("dropout") == "selection"
               else {}),
        } | self._enrolment_constants()
        self._consts["beta_centring"] = self._beta_centring()
        slope, var, ok = self._period_slopes()
        self._consts |= {"period_slope": slope, "period_var": var,
                         "period_ok": ok.astype(float), "beta_hat": self._beta_hat()}
        if self.domains:
            y_dom = self.data.visits[list(ALSFRS_DOMAINS)].to_numpy(float)
            self._consts["y_domain"] = y_dom
            self._consts["domain_active"] = _active_domains(y_dom, d["patient_index"].values,
                                                            d.sizes["patient"])
            self._consts["domain_floor"] = (
                np.ones(d["domain_floor_factor"].shape) if self.config["floors"] == "include"
                else d["domain_floor_factor"].values)
        return self._consts

    def _dropout_constants(self, has: np.ndarray) -> dict:
        """Each patient's last cycle (one-hot, patient x cycle) and whether the patient was
        followed for less (+1) or to the end (-1) in their arm (0: no cycle), by
        :func:`slopeshift.classical.followed_for_less`."""
        from slopeshift.classical import followed_for_less

        n_k = has.shape[1]
        any_c = has.any(axis=1)
        last_k = np.zeros(has.shape)
        idx = n_k - 1 - np.argmax(has[:, ::-1], axis=1)
        last_k[np.flatnonzero(any_c), idx[any_c]] = 1.0
        less = followed_for_less(self.data)["for_less"].to_dict()
        sign = np.array([0.0 if p not in less else (1.0 if less[p] else -1.0)
                         for p in self.design["patient"].values])
        return {"last_cycle": last_k, "dropout_sign": np.where(any_c, sign, 0.0)}

    #: constants that steer how the graph is built (Python-level decisions); every other
    #: constant enters the graph as data (see :meth:`_graph_constants`)
    _STRUCTURAL = ("controls", "enrolled", "comparison")

    def _graph_constants(self) -> _GraphConstants:
        """:meth:`_constants` as inputs of the graph rather than constants folded into it.

        The data then are inputs of the compiled log density, so that one compiled model
        serves every model of the same structure (other data of the same sizes, other prior
        values): see :mod:`slopeshift.compiled`. Structural constants (:attr:`_STRUCTURAL`)
        stay NumPy; decisions made on array values while building (which cells exist, which
        exposures overlap) change the graph itself and so its structure key.
        """
        return _GraphConstants(self._constants(), self._STRUCTURAL, self._pack)

    def _moments(self) -> tuple[dict, list, np.ndarray, list[int]]:
        """Each patient's moments of the visit covariates z and the scores (marginal model).

        z = (1, run-in exposure, cycle exposures, and with jumps the steps 1[t >= tau_ik]);
        the scores' mean is linear in per-patient coefficients over z (alpha_i, beta_i0, the
        cycle slopes, the jumps). Returns S_zz as ``{(d, e): (patient,)}`` for the pairs
        d <= e that are non-zero for some patient, S_zy as a list over d, S_yy (patient,)
        (:func:`~slopeshift.marginal.patient_moments`, the form
        :func:`~slopeshift.marginal.residual_products` takes) and the columns of z that are
        the exposures of the integrated-out effects, in the order of :meth:`_loadings`: the
        cycles, the run-in, then the steps.
        """
        if self._moments_cache is None:
            k = self._constants()
            n_k = k["has"].shape[1]
            z = [np.ones(len(k["y"])), k["x_pre"]] + list(k["x_cycle"].T)
            exposure = [2 + j for j in range(n_k)] + [1]
            if self.config["jump"]:
                z += list(k["x_jump"].T)
                exposure += [2 + n_k + j for j in range(n_k)]
            szz, szy, syy = patient_moments(np.column_stack(z), k["y"], k["p_idx"],
                                            len(k["n_visits"]))
            s_zz = {(a, e): szz[:, a, e]
                    for a, e in zip(*np.nonzero(np.triu(szz.any(axis=0))), strict=True)}
            self._moments_cache = (s_zz, list(szy.T), syy, exposure)
        s_zz, s_zy, syy, exposure = self._moments_cache
        return dict(s_zz), list(s_zy), syy, list(exposure)

    def _accel_shift(self, cell: np.ndarray) -> np.ndarray:
        """c_k of :meth:`_at_mean`, per cycle (``cell``: patient x cycle with an effect)."""
        d = self.design
        if not self.config["drift"]:
            return np.zeros(d.sizes["cycle"])
        s = d["natural_time"].values
        s_mean = np.where(cell.any(axis=0), (s * cell).sum(axis=0)
                          / np.maximum(cell.sum(axis=0), 1), 0.0)
        return s_mean * self._shift_unit()

    def _shear_constants(self, cell: np.ndarray) -> dict:
        """``shear_rate`` b_k (the mean run-in least-squares slope of the patients with an
        effect in cycle k, on the population's side of zero and at least 0.1 units/month from
        it; the median of all where the cycle has none) and ``shear_time`` t_k (their mean
        months from the run-in's middle to the cycle's; 0 without drift), for
        :meth:`_at_mean`."""
        d = self.design
        slope = d["runin_slope"].values
        b_ref = self._median_slope(-1.0)
        side = -1.0 if b_ref <= 0 else 1.0
        s = d["natural_time"].values
        n_k = d.sizes["cycle"]
        rate, time_ = np.full(n_k, b_ref), np.zeros(n_k)
        for j in range(n_k):
            treated = cell[:, j] & np.isfinite(slope)
            if treated.any():
                rate[j] = slope[treated].mean()
                time_[j] = s[treated, j].mean() if self.config["drift"] else 0.0
        return {"shear_rate": side * np.maximum(side * rate, 0.1), "shear_time": time_}

    def _beta_centring(self) -> np.ndarray:
        """lambda_i of the partly centred persistent rate beta_i0 (see :meth:`_build`).

        lambda_i = tau^2 / (tau^2 + s_i^2), where s_i^2 is how well patient i's own scores pin
        beta_i0 down: each period's least-squares slope (run-in and each cycle, from the
        patient's moments of the visit covariates) has variance sigma^2 [S_zz^-1]_pp, plus
        the drift's sd_drift^2, and the periods are pooled by inverse variance; tau, sigma and
        sd_drift are the medians of their priors. 1 is centred (the data identify beta_i0
        well), 0 non-centred (they say nothing, e.g. one visit). The choice changes only the
        sampler's coordinates, never the posterior.
        """
        # intercept, run-in exposure, the cycles (not the jump steps)
        inv, absent = self._moment_inverse(2 + self.design.sizes["cycle"])
        var = np.einsum("ijj->ij", inv)[:, 1:]  # per unit of noise variance
        pri = self.priors
        if self.domains:
            noise2 = (_prior_median(pri["sigma_visit"]) ** 2
                      + len(ALSFRS_DOMAINS) * _prior_median(pri["sigma_domain"]) ** 2)
        else:
            noise2 = _prior_median(pri["sigma"]) ** 2
        drift2 = _prior_median(pri["sd_drift"]) ** 2 if self.config["drift"] else 0.0
        v = noise2 * var + drift2
        ok = ~absent[:, 1:] & np.isfinite(v) & (noise2 * var < 1e6)
        info = np.where(ok, 1.0 / np.where(ok, v, 1.0), 0.0).sum(axis=1)
        tau2 = _prior_median(pri["sd_beta"]) ** 2
        return tau2 * info / (tau2 * info + 1.0)

    def _partly_centred(self, beta, mu_beta, sd_beta):
        """beta_pre_pc, the sampled coordinate, of persistent rates ``beta`` (points/month)."""
        lam = self._constants()["beta_centring"]
        return lam * mu_beta + (np.asarray(beta) - mu_beta) * sd_beta ** (lam - 1.0)

    def _median_slope(self, default: float = 0.0) -> float:
        """The median run-in least-squares slope (units/month, signed; ``default`` without
        any)."""
        slope = self.design["runin_slope"].values
        return float(np.nanmedian(slope)) if np.isfinite(slope).any() else default

    def _median_rate(self) -> float:
        """|median run-in least-squares slope| (units/month), at least 0.1."""
        b_ref = self._median_slope(-1.0)
        return max(abs(b_ref), 0.1)

    def _shift_unit(self) -> float:
        """How the cycle mean moves per unit of natural rate change (units/month) at fixed
        slopes: 1 / (median run-in slope) in the ratio form, -1 in the additive form."""
        if self.config["parameterization"] == "additive":
            return -1.0
        b_ref = self._median_slope(-1.0)
        b_ref = b_ref if abs(b_ref) >= 0.1 else (-0.1 if b_ref <= 0 else 0.1)
        return 1.0 / b_ref

    def _enrolment_constants(self) -> dict:
        """Who the enrolment rule selected, and its threshold (points/month)."""
        d = self.design
        rule = self.config["enrolment"]
        sxx = d["runin_sxx"].values
        slope = d["runin_slope"].values
        eligible = (d["arm"].values != "external") & (sxx > 0) & np.isfinite(slope)
        if rule is None or not eligible.any():
            return {"enrolled": np.zeros(len(sxx), bool), "enrol_threshold": np.nan,
                    "runin_sxx": sxx, "runin_sxx_enrolled": np.zeros(0)}
        if rule == "auto":
            threshold = float(slope[eligible].max())
        else:
            threshold = float(rule)
            above = [str(p) for p, e, s in zip(d["patient"].values, eligible, slope, strict=True)
                     if e and s >= threshold]
            if above:
                raise ValueError(
                    f"enrolment={threshold:g} says every patient's run-in least-squares slope "
                    f"was below {threshold:g} {self.data.spec.unit}/month, but patient(s) "
                    f"{', '.join(above[:8])} had a run-in slope at or above it; declare the rule "
                    "the trial used, enrolment='auto', or enrolment=None (all-comers)."
                )
        return {"enrolled": eligible, "enrol_threshold": threshold, "runin_sxx": sxx,
                "runin_sxx_enrolled": sxx[eligible]}

    @property
    def domains(self) -> bool:
        """Whether this is the four-domain model (``domains=True``)."""
        return bool(self.config.get("domains", False))

    @property
    def marginal(self) -> bool:
        """Whether the slowing effects u_i, e_ik are integrated out (Normal likelihood)."""
        return self.config["effects"] == "marginal"

    def _natural(self, beta_pre, k: dict, xp, floors: bool = True):
        """The natural rate of each patient in each cycle (points/month; patient x cycle).

        The persistent run-in rate beta_i0 plus the systematic change over the months from the
        middle of the run-in to the middle of the cycle, plus (with controls) the change that
        the controls measure in that cycle, a_k + c_k (beta_i0 - b_ref): a_k at the median
        run-in rate b_ref and c_k per unit of rate away from it (``natural_ratio``); all
        scaled by the cycle's floor factor (the share of the run-in decline that items not yet
        at 0 can carry; 1 without item floors), unless ``floors`` is False.
        """
        n = beta_pre[..., None] + 0.0 * k["natural_time"]
        if self.config["drift"]:
            n = (n + xp["acceleration"][..., None, None] * k["natural_time"]
                 + xp["natural_cycle"][..., None, :])
            if xp.get("natural_ratio") is not None:
                # with controls: the natural change also grows with the patient's own rate
                # (faster decliners change more), measured by the controls
                n = n + xp["natural_ratio"][..., None, :] * (beta_pre[..., None]
                                                             - k["rate_ref"])
        return n * k["floor_factor"] if floors else n

    def _slopes(self, natural_free, m, k: dict):
        """Each cell's fixed slope, the load of its slowing deviations, and the floor-scaled
        natural rate, from the unscaled natural rate ``natural_free`` and the expected slowing
        ``m`` (units/month; patient x cycle, any leading draw shape).

        Ratio form: f n (1 - m) and -f n. Additive form: f (n + m) and f: the floor factor f
        scales the slowing as it scales the natural rate (items at 0 carry neither), so that a
        treated patient's change and a control's are modelled alike; added unscaled, the
        slowing made a two-arm analysis lean towards no slowing on item-level data
        (docs "Natural history": twin arms gave P(rho_bar > 0) 0.40 instead of 0.5).
        """
        f = k["floor_factor"]
        natural = natural_free * f
        T, D = k["effect"], k["deviation"]
        if self.config["parameterization"] == "ratio":
            return natural * (1.0 - T * m), -natural * D, natural
        return natural + T * m * f, D * f + 0.0 * natural, natural

    def _build(self) -> pm.Model:
        d = self.design
        cfg = self.config
        ratio = cfg["parameterization"] == "ratio"
        self._pack = _Pack("data_pack")
        self._shared_priors = {}
        k = self._graph_constants()
        k_np = self._constants()
        has, p_idx = k["has"], k["p_idx"]
        n_cov = d.sizes["covariate"]
        coords = {"patient": d["patient"].values, "cycle": d["cycle"].values,
                  "visit": d["visit"].values}
        if n_cov:
            coords["covariate"] = d["covariate"].values
        if self.domains:
            coords["domain"] = list(ALSFRS_DOMAINS)
        with pm.Model(coords=coords) as model:
            # (the order in which variables are created sets the sampler's coordinates, and so
            # the numbers a seed gives: keep it)
            if self.domains:
                alpha_dom, share, sigma_dom, sigma_visit = self._domain_parameters(k)
            else:
                mu_alpha = self._prior("mu_alpha").create("mu_alpha")
                sd_alpha = self._prior("sd_alpha").create("sd_alpha")
            mu_beta = self._prior("mu_beta").create("mu_beta")
            sd_beta = self._prior("sd_beta").create("sd_beta")
            if self.domains:
                alpha = pm.Deterministic("alpha", alpha_dom.sum(axis=1), dims="patient")
            else:
                alpha = pm.Normal("alpha", mu_alpha, sd_alpha, dims="patient")
            # partly centred (Gorinova et al. 2020): beta_pre_pc ~ N(lam mu, sd^lam) and
            # beta_i0 = mu + sd^(1 - lam) (beta_pre_pc - lam mu) ~ N(mu, sd), with lam_i from
            # how well patient i's own scores pin beta_i0 down (_beta_centring). Fully centred
            # mixed better than non-centred at 20 and 120 patients, but drift leaves each
            # patient's rate only partly identified: partly centred, the smallest ESS doubled at
            # 20 and 200 patients and sd_beta's rose 1.5-2.7 times at 2,000 (docs "Speed and
            # memory")
            conditional = self._conditional_coordinates
            if conditional:
                # the marginal model: beta_i0 = c_i + s_i z_i, at its approximate conditional
                # posterior given the population parameters (_conditional_beta); made below,
                # once the parameters it depends on exist
                beta_z = pm.Flat("beta_pre_z", dims="patient")
            else:
                lam = k["beta_centring"]
                beta_pc = pm.Normal("beta_pre_pc", lam * mu_beta, sd_beta**lam, dims="patient")
                beta_pre = pm.Deterministic(
                    "beta_pre", mu_beta + sd_beta ** (1.0 - lam) * (beta_pc - lam * mu_beta),
                    dims="patient")

            slowing = cfg["slowing"]
            if slowing == "none":
                # no treatment effect: every cell's slope is its natural rate (plus drift)
                sd_patient = pm.Deterministic("sd_patient", pt.as_tensor(0.0))
                sd_pc = pm.Deterministic("sd_patient_cycle", pt.as_tensor(0.0))
            else:
                sd_patient, sd_pc = self._effect_sds()
            if cfg["interval_effect"] and slowing != "none":
                theta = self._prior("theta").create("theta")
            else:
                theta = pm.Deterministic("theta", pt.as_tensor(0.0))
            # Cycle means at the reference interval (rho_k) and theta are nearly collinear when
            # cycles differ in typical length (3, 3, 5, 6 months). Sample instead the cycle mean
            # at the cycle's own average interval, which the data identify separately from
            # theta, and put the prior on rho_k = that - theta * (mean g_k - g_ref): a shift
            # with unit Jacobian, so the posterior is exactly the model's.
            key = "rho_cycle" if ratio else "delta_cycle"
            nat = {}
            sd_drift = None
            if cfg["drift"]:
                sd_drift = self._prior("sd_drift").create("sd_drift")
                nat["acceleration"] = self._prior("acceleration").create("acceleration")
                # the natural change of each cycle beyond the acceleration: measured by the
                # controls (vague prior), or without controls how far this trial's patients may
                # stray from the published natural history (informative prior natural_shift)
                shift_key = "natural_cycle" if k["controls"] else "natural_shift"
                nat["natural_cycle"] = self._prior(shift_key).create("natural_cycle", dims="cycle")
                if k["comparison"]:
                    # controls also measure how the natural change depends on the rate: the
                    # slowing is then what the treated show beyond it, also where faster
                    # decliners change more (regression to the mean, floors, a pace that
                    # drifts in proportion to itself), which would otherwise look like a
                    # proportional slowing of the treated only
                    nat["natural_ratio"] = self._prior("natural_ratio").create(
                        "natural_ratio", dims="cycle")
            n_k = d.sizes["cycle"]
            sheared = ratio and cfg["drift"]
            if slowing == "per_cycle":
                eff_at_mean = self._at_mean(pm.Flat(f"{key}_at_mean_interval", dims="cycle"),
                                            nat.get("acceleration"), nat.get("natural_cycle"), k,
                                            nat.get("natural_ratio"))
                if sheared:
                    pm.Potential(f"{key}_shear_jacobian", pt.log(pt.abs(self._shear_ratio(
                        nat["acceleration"], nat["natural_cycle"], k,
                        nat.get("natural_ratio")))).sum())
                eff_k = pm.Deterministic(key, eff_at_mean - theta * k["g_mean"], dims="cycle")
                pm.Potential(f"{key}_prior", pm.logp(self._prior(key).as_dist(), eff_k).sum())
            elif slowing == "common":
                # one slowing for every cycle (at the reference interval), sampled at the
                # cycles' average interval and moved along the natural change as above
                sampled = pm.Flat(f"{key}_common_at_mean_interval")
                if sheared:
                    r = (self._shear_ratio(nat["acceleration"], nat["natural_cycle"], k,
                                           nat.get("natural_ratio")) * k["shear_w"]).sum()
                    common = 1.0 - (1.0 - sampled) * r
                    pm.Potential(f"{key}_shear_jacobian", pt.log(pt.abs(r)))
                else:
                    common = sampled + self._common_shift(nat.get("acceleration"),
                                                          nat.get("natural_cycle"), k)
                eff_common = common - theta * k["g_bar"]
                pm.Potential(f"{key}_prior", pm.logp(self._prior(key).as_dist(), eff_common))
                eff_k = pm.Deterministic(key, eff_common + pt.zeros(n_k), dims="cycle")
                eff_at_mean = eff_k + theta * k["g_mean"]
            else:
                eff_k = pm.Deterministic(key, pt.zeros(n_k), dims="cycle")
                eff_at_mean = eff_k
            # m_ik: the expected slowing of patient i in cycle k (without u_i and e_ik)
            m = eff_at_mean[None, :] + theta * k["g_dev"]
            if n_cov and slowing != "none":
                gamma = self._prior("gamma").create("gamma", dims="covariate")
                m = m + pt.dot(k["x_std"], gamma)[:, None]
            if conditional:
                sigma = self._sigma(sigma_dom if self.domains else None,
                                    sigma_visit if self.domains else None)
                c, s_cond = self._conditional_beta(mu_beta, sd_beta, sigma, sd_drift, nat, m,
                                                   sd_patient, sd_pc, k)
                beta_pre = pm.Deterministic("beta_pre", c + s_cond * beta_z, dims="patient")
                pm.Potential("beta_pre_prior",
                             pm.logp(pm.Normal.dist(mu_beta, sd_beta), beta_pre).sum())
                pm.Potential("beta_pre_jacobian", pt.log(s_cond).sum())
            natural_free = self._natural(beta_pre, k, nat, floors=False)
            T = k["effect"]
            # load_ik: how one unit of the patient (u_i) or patient-cycle (e_ik) deviation moves
            # the slope (0 outside the deviation cells: the treated's and, with treated patients
            # beside them, the controls')
            fixed_slope, load, natural = self._slopes(natural_free, m, k)

            # population: patient-month weighted slowing, and a new patient's predictive slowing
            if ratio:
                rho_k = eff_k
            else:
                scale = pm.Deterministic("effect_scale",
                                         self._effect_scale(natural_free, mu_beta, pt.abs,
                                                            k))
                rho_k = pm.Deterministic("rho_cycle", eff_k / scale, dims="cycle")
            pm.Deterministic("rho_bar", pt.dot(rho_k, k["weights"]))
            z_new = pm.Normal("z_new_patient", 0.0, 1.0, shape=2)
            z_new_cycle = pm.Normal("z_new_cycle", 0.0, 1.0, dims="cycle")
            new_eff = pt.dot(eff_k + sd_pc * z_new_cycle, k["weights"]) + sd_patient * z_new[0]
            if ratio:
                pm.Deterministic("rho_new", new_eff)
            else:
                pm.Deterministic("rho_new", new_eff / pt.abs(mu_beta + sd_beta * z_new[1]))

            if not conditional:
                sigma = self._sigma(sigma_dom if self.domains else None,
                                    sigma_visit if self.domains else None)
            if k["enrolled"].any():
                self._enrolment_potential(mu_beta, sd_beta, sd_drift, sigma, k)
            jump_k = sd_jump = None
            if cfg["jump"]:
                jump_k = self._prior("jump").create("jump", dims="cycle")
                sd_jump = self._prior("sd_jump").create("sd_jump")
            if self.marginal:
                # the scores' mean is linear in per-patient coefficients w_i over the visit
                # covariates z = (1, run-in exposure, cycle exposures, jump steps), so every
                # residual product the density needs comes from each patient's moments of
                # (z, y): nothing per visit is left in the density or its gradient
                n_k = d.sizes["cycle"]
                w = [alpha, beta_pre] + [fixed_slope[:, j] for j in range(n_k)]
                if cfg["jump"]:
                    w += [jump_k[j] * T[:, j] for j in range(n_k)]
                s_zz, s_zy, syy, exposure = self._moments()
                s_zz = {pair: self._pack.add(v) for pair, v in s_zz.items()}
                g, c = residual_products(w, s_zz, [self._pack.add(v) for v in s_zy],
                                         self._pack.add(syy))
                loadings, q = self._loadings(load, sd_patient, sd_pc, sd_drift, pt.sqrt,
                                             sd_jump, k)
                terms = low_rank_terms(
                    loadings, _exposure_block(s_zz, exposure), [g[a] for a in exposure], c,
                    k["n_visits"], q, sigma, sqrt=pt.sqrt, log=pt.log,
                )
                pm.Potential("y_marginal", terms.logp.sum())
                if cfg.get("dropout") == "selection":
                    self._dropout_potential(terms, loadings, q, fixed_slope, sigma, k)
                self._pack.finish()
                return model

            # latent (non-centred) effects: needed for Student-t, censoring and jumps
            z_patient = pm.Normal("z_patient", 0.0, 1.0, dims="patient")
            z_cycle = pm.Normal("z_patient_cycle", 0.0, 1.0, dims=("patient", "cycle"))
            dev = sd_patient * z_patient[:, None] + sd_pc * z_cycle
            slope = fixed_slope + load * dev
            if k_np["floor_cell"].any():
                z_floor = pm.Normal("z_floor", 0.0, 1.0, dims=("patient", "cycle"))
                slope = slope + k["floor_sd"] * k["floor_cell"] * z_floor
            pre_slope = beta_pre
            if cfg["drift"]:
                z_drift = pm.Normal("z_drift", 0.0, 1.0, dims=("patient", "cycle"))
                z_drift_pre = pm.Normal("z_drift_pre", 0.0, 1.0, dims="patient")
                slope = slope + sd_drift * z_drift
                pre_slope = beta_pre + sd_drift * z_drift_pre
                pm.Deterministic("drift", pt.where(has, sd_drift * z_drift, np.nan),
                                 dims=("patient", "cycle"))
            rho = m + dev if ratio else (m + dev) / pt.abs(natural_free)
            nan = np.float64(np.nan)
            cell = has & (T > 0)
            pm.Deterministic("slope", pt.where(has, slope, nan), dims=("patient", "cycle"))
            pm.Deterministic("natural_slope", pt.where(has, natural, nan),
                             dims=("patient", "cycle"))
            pm.Deterministic("slope_runin", pre_slope, dims="patient")
            pm.Deterministic("rho", pt.where(cell, rho, nan), dims=("patient", "cycle"))
            cycles = slope[p_idx] * k["x_cycle"]  # (visit, cycle): each cycle's decline so far
            path = pre_slope[p_idx] * k["x_pre"] + cycles.sum(axis=1)
            mu = alpha[p_idx] + path
            if cfg["jump"]:
                z_jump = pm.Normal("z_jump", 0.0, 1.0, dims=("patient", "cycle"))
                J = (jump_k[None, :] + sd_jump * z_jump) * T
                pm.Deterministic("jump_patient", pt.where(cell, J, nan),
                                 dims=("patient", "cycle"))
                mu = mu + (J[p_idx] * k["x_jump"]).sum(axis=1)
            if self.domains:
                # each domain carries its share of the latent path (the cycles' part scaled by
                # the domain's item floors) and of the visit's shared deviation (a good or bad
                # day moves every domain), censored at 0
                z_visit = pm.Normal("z_visit", 0.0, 1.0, dims="visit")
                dom_path = ((pre_slope[p_idx] * k["x_pre"] + sigma_visit * z_visit)[:, None]
                            + (cycles[:, :, None] * k["domain_floor"][p_idx]).sum(axis=1))
                mu, sigma = alpha_dom[p_idx] + share[p_idx] * dom_path, sigma_dom
            if cfg["likelihood"] == "student_t":
                nu = self._prior("nu").create("nu")
                dist = pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma)
            else:
                dist = pm.Normal.dist(mu=mu, sigma=sigma)
            if self.domains:
                pm.Censored("y", dist, lower=DOMAIN_FLOOR, upper=None, observed=k["y_domain"],
                            dims=("visit", "domain"))
            elif cfg["censored"]:
                lo, hi = self.data.spec.censor_bounds
                pm.Censored("y", dist, lower=lo, upper=hi, observed=k["y"], dims="visit")
            else:
                model.register_rv(dist, "y", observed=k["y"], dims=("visit",))
        self._pack.finish()
        return model

    def _sigma(self, sigma_dom=None, sigma_visit=None):
        """The noise SD of the total (points): sampled, or with domains the visit's shared
        deviation and each domain's own combined, for the enrolment term and the summaries
        that describe the total."""
        if self.domains:
            return pm.Deterministic("sigma", pt.sqrt(sigma_visit**2 + (sigma_dom**2).sum()))
        return self._prior("sigma").create("sigma")

    @property
    def _conditional_coordinates(self) -> bool:
        """Whether beta_i0 is sampled at its approximate conditional posterior
        (:meth:`_conditional_beta`; the marginal model of the total) rather than partly
        centred."""
        return self.marginal and not self.domains

    def _conditional_beta(self, mu_beta, sd_beta, sigma, sd_drift, nat, m, sd_patient, sd_pc,
                          k):
        """Centre c_i and scale s_i of beta_i0's sampled coordinate: beta_i0 = c_i + s_i z_i.

        Each period's least-squares slope (run-in and cycles, :meth:`_period_slopes`) is, given
        the population parameters, about linear in beta_i0: b_ip = a_ip beta_i0 + d_ip + noise
        of variance v_ip (the scores' noise, the drift and, in cycles, the slowing deviations).
        a_ip and d_ip are the cell's fixed slope at beta_i0 = 1 and 0 (:meth:`_slopes`), so they
        follow the slowing, the natural change and the floors. Pooled with the prior
        N(mu_beta, sd_beta), the approximate conditional posterior is N(c_i, s_i^2). Sampling z_i
        instead of beta_i0 removes most of the dependence between each patient's rate and the
        population parameters (at 2,000 patients their slow mixing came from it); the prior
        stays on beta_i0, with the Jacobian s_i, so the posterior is exactly the model's.
        """
        n_p = len(self._constants()["n_visits"])
        zero, one = pt.zeros(n_p), pt.ones(n_p)
        fs0, _, _ = self._slopes(self._natural(zero, k, nat, floors=False), m, k)
        fs1, _, _ = self._slopes(self._natural(one, k, nat, floors=False), m, k)
        _, load, _ = self._slopes(self._natural(k["beta_hat"], k, nat, floors=False), m, k)
        a = pt.concatenate([one[:, None], fs1 - fs0], axis=1)
        d = pt.concatenate([zero[:, None], fs0], axis=1)
        noise = sigma**2 * k["period_var"]
        drift = 0.0 if sd_drift is None else sd_drift**2
        vague = (k["floor_sd"] * k["floor_cell"]) ** 2
        dev = load**2 * (sd_pc**2 + sd_patient**2) + vague
        v = noise + drift + pt.concatenate([zero[:, None], dev], axis=1)
        w = k["period_ok"] / v
        prec = 1.0 / sd_beta**2 + (w * a**2).sum(axis=1)
        c = (mu_beta / sd_beta**2 + (w * a * (k["period_slope"] - d)).sum(axis=1)) / prec
        return c, 1.0 / pt.sqrt(prec)

    def _moment_inverse(self, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's pseudo-inverse of S_zz over the first ``cols`` visit covariates
        (patient, cols, cols), and which of them no visit exposes (patient, cols): those get a
        unit diagonal, so that a period without visits is decoupled from the rest."""
        s_zz, _, syy, _ = self._moments()
        mat = np.zeros((len(syy), cols, cols))
        for (a, e), val in s_zz.items():
            if a < cols and e < cols:
                mat[:, a, e] = mat[:, e, a] = val
        absent = np.einsum("ijj->ij", mat) <= 1e-12
        mat[:, np.arange(cols), np.arange(cols)] += absent
        return np.linalg.pinv(mat), absent

    def _period_slopes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each patient's least-squares slope of the run-in and of each cycle (units/month),
        from the moments of the visit covariates (the continuous piecewise-linear fit, with
        jumps where the model has them), their variance per unit of noise variance, and
        whether the period has visits to estimate it; (patient, 1 + cycle) each."""
        _, s_zy, _, _ = self._moments()
        n_k = self.design.sizes["cycle"]
        inv, absent = self._moment_inverse(len(s_zy))
        coef = np.einsum("ijk,ik->ij", inv, np.column_stack(s_zy))[:, 1:2 + n_k]
        var = np.einsum("ijj->ij", inv)[:, 1:2 + n_k]
        ok = ~absent[:, 1:2 + n_k] & np.isfinite(var) & np.isfinite(coef) & (var < 1e6)
        return np.where(ok, coef, 0.0), np.where(ok, var, 1.0), ok

    def _domain_parameters(self, k):
        """The four-domain model's intercepts, shares of the decline and noise SDs.

        alpha_id ~ N(mu_alpha_domain[d], sd_alpha_domain[d]) (points of 12). The shares are a
        softmax of log-shares mu_share[d] + sd_share z_id, with mu_share and each patient's
        z_i summing to 0 over the domains (a softmax is unchanged by adding a constant, so
        this removes a direction the data cannot inform; mu_share ~ ZeroSumNormal(1),
        z_id ~ ZeroSumNormal(1), non-centred). The visit-to-visit noise has a part shared by
        the domains (SD ``sigma_visit``, on the total's scale, spread over the domains by their
        shares: a patient assessed on a good or bad day scores higher or lower in every
        domain) and each domain's own (``sigma_domain``); that is how the scatter of real and
        simulated patients behaves, though on its own it did not change the slowing measured on
        simulated no-effect trials (docs "Natural history"). Returns (alpha_domain, share,
        sigma_domain, sigma_visit).
        """
        mu_a = self._prior("mu_alpha_domain").create("mu_alpha_domain", dims="domain")
        sd_a = self._prior("sd_alpha_domain").create("sd_alpha_domain", dims="domain")
        alpha_dom = pm.Normal("alpha_domain", mu_a, sd_a, dims=("patient", "domain"))
        mu_share = pm.ZeroSumNormal("mu_share", sigma=1.0, dims="domain")
        sd_share = self._prior("sd_share").create("sd_share")
        z_share = pm.ZeroSumNormal("z_share", sigma=1.0, dims=("patient", "domain"))
        # a domain at its floor at every visit of the patient shows none of the decline: its
        # share is 0, else the prior alone would add hidden decline to the patient's rate (and
        # put it off the scale of the natural-history priors)
        off = 60.0 * (1.0 - k["domain_active"])
        share = pm.Deterministic("share", pt.special.softmax(mu_share + sd_share * z_share - off,
                                                             axis=1),
                                 dims=("patient", "domain"))
        sigma_dom = self._prior("sigma_domain").create("sigma_domain", dims="domain")
        sigma_visit = self._prior("sigma_visit").create("sigma_visit")
        return alpha_dom, share, sigma_dom, sigma_visit

    def _at_mean(self, sampled, acceleration, natural_cycle=None, k=None, natural_ratio=None):
        """The cycle means at their own intervals, from the sampler's coordinates.

        Without controls, the natural acceleration and the cycle means are nearly collinear
        (both move every patient's slope in a cycle by about the same amount): at 200 patients
        the two mixed slowly (R-hat 1.0105, ESS 282). The sampler therefore moves along the
        slope they share, so that the sampled coordinate is what the treated patients' slopes
        identify, apart from what the natural change (``acceleration``, the cycle's
        ``natural_cycle`` from controls or the single-arm natural shift, and with controls
        ``natural_ratio``) does.

        Additive form: the cycle mean is its coordinate minus the natural change at the treated
        patients' mean time (acceleration * months + natural_cycle), a shear with unit
        Jacobian. Ratio form: the treated patients' mean slope is n_k (1 - rho_k), with
        n_k = b_k + c_k their mean natural rate in cycle k (b_k their mean run-in rate, c_k the
        natural change); the cycle mean is 1 - (1 - sampled) exp(-c_k / b_k)
        (:meth:`_shear_ratio`), so that at a fixed coordinate their mean slope does not move
        with the natural change, to first order (exactly it would be b_k / n_k, whose pole at
        n_k = 0 made small two-arm fits diverge: 438 divergences over 16 fits of 20 + 20).
        The model adds its Jacobian, -c_k / b_k. It replaced a linear shift by
        (natural change) / (median run-in slope), which ignored the factor 1 - rho: at 2,000
        patients the sampled cycle means still correlated 0.6-0.7 with the natural change
        (docs "Speed and memory"). Either way the density is exactly the model's. Chains start
        the natural change at its prior mean: with it jittered, one chain of four once settled
        at 2,000 patients in the ratio model's far poorer mirror mode, where a cycle's natural
        rate and 1 - rho both change sign.
        ``sampled`` is (..., cycle).
        """
        if acceleration is None:
            return sampled
        k = self._constants() if k is None else k
        if self.config["parameterization"] == "ratio":
            return 1.0 - (1.0 - sampled) * self._shear_ratio(acceleration, natural_cycle, k,
                                                             natural_ratio)
        out = sampled + acceleration[..., None] * k["accel_shift"]
        if natural_cycle is not None:
            out = out + natural_cycle * k["shift_unit"]
        return out

    def _shear_ratio(self, acceleration, natural_cycle, k, natural_ratio=None):
        """exp(-c_k / b_k) of :meth:`_at_mean` (..., cycle): b_k the treated patients' mean
        run-in rate, c_k the natural change of their mean rate in cycle k, acceleration t_k +
        natural_cycle_k (+ natural_ratio_k (b_k - b_ref) with controls); about b_k / n_k."""
        change = acceleration[..., None] * k["shear_time"]
        if natural_cycle is not None:
            change = change + natural_cycle
        if natural_ratio is not None:
            change = change + natural_ratio * (k["shear_rate"] - k["rate_ref"])
        x = -change / k["shear_rate"]
        return np.exp(x) if isinstance(x, np.ndarray | float) else pt.exp(x)

    def _common_shift(self, acceleration, natural_cycle, k=None):
        """The mean natural-change shift of the additive form's one slowing.

        For ``slowing="common"``: the one slowing is sampled at the average of the cycles' mean
        intervals (minus g_ref), moved along the average of :meth:`_at_mean`'s shift (unit
        Jacobian, as there; the ratio form's shear is multiplicative, in :meth:`_build`).
        """
        k = self._constants() if k is None else k
        if acceleration is None:
            return 0.0
        shear = self._at_mean(0.0 * natural_cycle, acceleration, natural_cycle, k)
        return (shear * k["shear_w"]).sum(axis=-1)

    def _effect_scale(self, natural, mu_beta, abs_, k=None):
        """The additive model's slope change -> slowing scale (units/month).

        The treated patients' mean natural rate over the cells with an effect, not the
        screened population's mean mu_beta, which enrolment on fast decline makes slower than
        theirs (|mu_beta| without such cells). ``natural`` has a trailing (patient, cycle)
        shape, ``mu_beta`` the leading shape.
        """
        if self._constants()["n_eff"] <= 0:
            return abs_(mu_beta)
        k = self._constants() if k is None else k
        return abs_((natural * k["effect"]).sum(axis=(-2, -1)) / k["n_eff"])

    def _loadings(self, load, sd_patient, sd_pc, sd_drift, sqrt,
                  sd_jump=None, k=None) -> tuple[dict, int]:
        """Sparse loadings of the integrated-out effects on the exposures (cycles, run-in).

        Effects: one per cycle (the patient-cycle slowing e_ik and, with drift, the cycle's
        natural drift, which share the cycle's exposure and combine into one Normal with SD
        s_ik = sqrt(load_ik^2 sd_pc^2 + sd_drift^2)), the patient's slowing u_i, and with drift
        the run-in's own drift. A lasting-floor cell (``floors="exclude"``) has no slowing and
        adds a vague deviation of SD ``floor_sd`` (three times the median run-in rate) to its
        cycle's effect. With jumps (``sd_jump`` given), the patient's acute jump at injection k,
        J_ik - jump_k ~ N(0, sd_jump) in cells with an effect, is one more effect on the step
        exposure 1[t >= tau_ik]: linear-Gaussian, so integrated out exactly like the slowing.
        ``load`` has a trailing (patient, cycle) shape.
        """
        n_k = self.design.sizes["cycle"]
        cols = [load[..., j] for j in range(n_k)]
        k = self._constants() if k is None else k
        # a lasting-floor cell carries no effect (load 0) and a vague deviation of its own
        vague = [k["floor_sd"] * k["floor_cell"][:, j] for j in range(n_k)]
        if sd_drift is None:
            loadings = {(j, j): cols[j] * sd_pc + vague[j] for j in range(n_k)}
        else:
            loadings = {(j, j): sqrt(cols[j] ** 2 * sd_pc**2 + sd_drift**2 + vague[j] ** 2)
                        for j in range(n_k)}
            loadings[(n_k, n_k + 1)] = sd_drift + 0.0 * cols[0]
        loadings |= {(j, n_k): cols[j] * sd_patient for j in range(n_k)}
        q = n_k + 1 + (sd_drift is not None)
        if sd_jump is not None:
            T = k["effect"]
            loadings |= {(n_k + 1 + j, q + j): sd_jump * T[:, j] for j in range(n_k)}
            q += n_k
        return loadings, q

    def _last_slope_terms(self, terms, loadings, q, fixed_slope, sigma, k) -> dict:
        """The last cycle's slope given the scores: its loadings on the effects ``w``,
        x = C^-1 w, and its conditional mean and variance (fixed slope + w' E[zeta | y],
        sigma^2 x'x), for NumPy arrays or tensors (last axis: patient)."""
        n_k = self.design.sizes["cycle"]
        last = k["last_cycle"]
        w = []
        for col in range(q):
            acc = 0.0
            for j in range(n_k):
                v = loadings.get((j, col))
                if v is not None:
                    acc = acc + last[:, j] * v
            w.append(acc)
        x = solve_lower(terms.chol, w)
        mean = (fixed_slope * last).sum(axis=-1) + sum(x[i] * terms.z[i] for i in range(q))
        var = sigma**2 * sum(xi**2 for xi in x)
        return {"w": w, "x": x, "mean": mean, "var": var}

    def _select_draws(self, zeta, terms, loadings, q, fixed, sigma, p, k, rng) -> np.ndarray:
        """Move Gaussian draws of the effects to their exact conditional posterior under the
        selection model of dropout, in place; returns log P(s_i | y_i) (draw, patient).

        Given the scores, (zeta, U) is jointly Normal with U = a + c (b_last - b_ref) + N(0, 1)
        the selection's latent variable (U > 0: followed for less). A draw of U from its
        marginal truncated to the observed side, and the draw zeta0 moved by
        Cov(zeta, U) / Var(U) (U - U0) (U0 the latent of zeta0 and its own noise), is a draw
        from zeta given y and s: exact, as for the effects themselves.
        """
        from scipy.special import log_ndtr, ndtr, ndtri

        t = self._last_slope_terms(terms, loadings, q, fixed, sigma, k)
        a = p["dropout_intercept"][:, None]
        c = p["dropout_slope"][:, None]
        s = k["dropout_sign"][None, :]
        mu_u = a + c * (t["mean"] - k["rate_ref"])
        sd_u = np.sqrt(1.0 + c**2 * t["var"])
        # zeta's own latent, and S w = sigma^2 C'^-1 x (Cov(zeta, b_last))
        b_last = (fixed * k["last_cycle"]).sum(axis=-1) + sum(t["w"][i] * zeta[i]
                                                               for i in range(q))
        u0 = a + c * (b_last - k["rate_ref"]) + rng.standard_normal(mu_u.shape)
        sw = [sigma**2 * v for v in solve_upper(terms.chol, t["x"])]
        # U from N(mu_u, sd_u) truncated to U > 0 (s = +1) or U < 0 (s = -1), drawn on the
        # side away from the bulk for accuracy in the tails
        alpha = -s * mu_u / sd_u  # the bound on s * Z, Z standard normal
        uni = rng.uniform(size=mu_u.shape)
        tail = ndtr(-alpha)  # P(s Z > alpha)
        z = -ndtri(np.clip(tail * uni, 1e-300, 1.0))  # s Z given s Z > alpha
        u = mu_u + s * sd_u * z
        move = np.where(s != 0, c * (u - u0) / sd_u**2, 0.0)
        for i in range(q):
            zeta[i] = zeta[i] + move * sw[i]
        return np.where(s != 0, log_ndtr(s * mu_u / sd_u), 0.0)

    def _dropout_potential(self, terms, loadings, q, fixed_slope, sigma, k) -> None:
        """The selection model of dropout (``dropout="selection"``).

        A patient is followed for less (s_i = +1) or to the end (s_i = -1) in their arm
        (:func:`slopeshift.classical.followed_for_less`). P(s_i = +1 | b_i) =
        Phi(a + c (b_i - b_ref)), b_i the patient's slope in their last cycle (natural rate,
        slowing, drift and the patient's deviations) and b_ref the median run-in slope. Given
        the scores, b_i is Normal with mean m_i and variance v_i (the exact conditional
        posterior of the integrated-out effects), so the selection integrates out exactly:
        P(s_i | y_i) = Phi(s_i (a + c (m_i - b_ref)) / sqrt(1 + c^2 v_i)). This is a
        shared-parameter model of data missing not at random: patients who leave because they
        decline fast leave the slower ones in later cycles, which the model of the scores alone
        reads as slowing.
        """
        t = self._last_slope_terms(terms, loadings, q, fixed_slope, sigma, k)
        a = self._prior("dropout_intercept").create("dropout_intercept")
        c = self._prior("dropout_slope").create("dropout_slope")
        arg = (k["dropout_sign"] * (a + c * (t["mean"] - k["rate_ref"]))
               / pt.sqrt(1.0 + c**2 * t["var"]))
        keep = pt.neq(k["dropout_sign"], 0.0)
        pm.Potential("dropout", pt.switch(keep, pm.logcdf(pm.Normal.dist(0.0, 1.0), arg),
                                          0.0).sum())

    def _enrolment_potential(self, mu_beta, sd_beta, sd_drift, sigma, k) -> None:
        """Condition on enrolment: each enrolled patient's run-in slope passed the rule.

        A patient enrolled because the least-squares slope of the run-in, b_i = beta_i0 + d_i0
        + noise (variance sigma^2 / Sxx_i), was below the threshold c contributes
        p(y_i | theta) / P(b_i < c | theta), with P(b_i < c) = Phi((c - mu_beta) /
        sqrt(sd_beta^2 + sd_drift^2 + sigma^2 / Sxx_i)). mu_beta and sd_beta then describe the
        patients screened, not those enrolled, which removes regression to the mean.
        """
        var = sd_beta**2 + sigma**2 / k["runin_sxx_enrolled"]
        if sd_drift is not None:
            var = var + sd_drift**2
        z = (k["enrol_threshold"] - mu_beta) / pt.sqrt(var)
        pm.Potential("enrolment", -pm.logcdf(pm.Normal.dist(0.0, 1.0), z).sum())

    def _effect_sds(self):
        """sd_patient and sd_patient_cycle, sampled as their total and the patient's share.

        With few patients the data say more about the total variation of the slowing than about
        how it splits between patients and cycles, so (sd_patient, sd_patient_cycle) lie along
        an arc that bends sharply near either axis (divergences). Sampling log T and logit f,
        with sd_patient = T sqrt(f) and sd_patient_cycle = T sqrt(1 - f), straightens it. The
        priors stay on the two SDs, with the Jacobian T^2 sqrt(f (1 - f)) / 2.
        """
        log_total = pm.Flat("log_sd_effects")
        logit_share = pm.Flat("logit_patient_share")
        total = pt.exp(log_total)
        share = pm.math.sigmoid(logit_share)
        sd_patient = pm.Deterministic("sd_patient", total * pt.sqrt(share))
        sd_pc = pm.Deterministic("sd_patient_cycle", total * pt.sqrt(1.0 - share))
        log_jac = 2.0 * log_total + 0.5 * pt.log(share) + 0.5 * pt.log1p(-share) - np.log(2.0)
        pm.Potential("effect_sd_prior", pm.logp(self._prior("sd_patient").as_dist(), sd_patient)
                     + pm.logp(self._prior("sd_patient_cycle").as_dist(), sd_pc) + log_jac)
        return sd_patient, sd_pc

    def _prior(self, key: str) -> _SharedPrior:
        """The prior ``key`` with its parameters as graph inputs (in the data pack), so that
        other prior values reuse a compiled model."""
        made = self._shared_priors.get(key)
        if made is None:
            p = self.priors[key]
            made = _SharedPrior(p.dist, {
                n: self._pack.add(v) for n, v in p.params.items()})
            self._shared_priors[key] = made
        return made

    def _posterior_arrays(self, posterior: xr.Dataset) -> dict[str, np.ndarray]:
        """The parameters the marginal density needs, as (chain x draw, ...) arrays.

        ``m_at_mean`` is each cycle's mean at its own mean interval (any slowing option), from
        the stored cycle means at the reference interval and theta.
        """
        n = posterior.sizes["chain"] * posterior.sizes["draw"]

        def arr(name):
            return posterior[name].values.reshape(n, *posterior[name].shape[2:])

        names = ["alpha", "beta_pre", "theta", "sd_patient", "sd_patient_cycle", "sigma"]
        names += [v for v in ("gamma", "acceleration", "natural_cycle", "natural_ratio",
                              "dropout_intercept", "dropout_slope", "sd_drift", "jump",
                              "sd_jump", "mu_alpha", "sd_alpha", "mu_beta", "sd_beta")
                  if v in posterior]
        par = {v: arr(v) for v in names}
        key = "rho_cycle" if self.config["parameterization"] == "ratio" else "delta_cycle"
        par["m_at_mean"] = arr(key) + par["theta"][:, None] * self._constants()["g_mean"]
        return par

    def _conditional_terms(self, p: dict, alpha, beta, sd_alpha=None,
                           density: bool = True, rows: dict | None = None) -> dict:
        """The marginal density of each patient's scores given alpha_i and beta_i0.

        ``p`` holds parameter arrays with a leading draw dimension (:meth:`_posterior_arrays`),
        ``alpha`` and ``beta`` are (draw, patient). With ``sd_alpha`` (draw, 1) the intercept
        is integrated out too: ``alpha`` is then its population mean and one more Normal
        effect (SD ``sd_alpha``) loads on a column of ones. Returns the expected slowing ``m``,
        ``natural`` rates, ``fixed`` slopes, ``load``, the scores' mean ``mu`` (draw, visit),
        the ``loadings`` (exposure column, effect), the number of effects ``q``, r'r ``c`` and
        the :class:`~slopeshift.marginal.MarginalTerms` ``terms`` (None with
        ``density=False``, when only the mean and loadings are needed; ``mu`` is computed
        only then, and is None otherwise). ``rows`` (with ``density=False``): the mean at
        linear combinations of visits instead, ``{"patient", "one", "x_pre", "x_cycle",
        "x_jump"}`` (each combination within one patient: its index, and the combined
        intercept weight and exposures), the mean being linear in those.
        """
        k = self._constants()
        p_idx = k["p_idx"]
        col = (slice(None), None)
        T = k["effect"]
        m = p["m_at_mean"][:, None, :] + p["theta"][:, None, None] * k["g_dev"][None]
        if "gamma" in p and self.config["slowing"] != "none":
            m = m + (p["gamma"] @ k["x_std"].T)[:, :, None]
        natural_free = self._natural(beta, k, {n: p[n] for n in ("acceleration",
                                                                 "natural_cycle",
                                                                 "natural_ratio") if n in p},
                                     floors=False)
        fixed, load, natural = self._slopes(natural_free, m, k)
        n_k = T.shape[1]
        # the residual products from each patient's moments of (z, y) (see _moments): no
        # work per visit unless the scores' mean itself is asked for (density=False)
        s_zz, s_zy, syy, exposure = self._moments()
        w = [alpha, beta] + [fixed[..., j] for j in range(n_k)]
        if self.config["jump"]:
            w += [p["jump"][:, None, j] * T[:, j] for j in range(n_k)]
        g, c = residual_products(w, s_zz, s_zy, syy)
        if sd_alpha is not None:  # the intercept's column of ones is one more exposure
            exposure = [*exposure, 0]
        gram = _exposure_block(s_zz, exposure)
        b = [g[a] for a in exposure]
        mu = None
        if not density:
            r = rows or {"patient": p_idx, "one": 1.0, "x_pre": k["x_pre"],
                         "x_cycle": k["x_cycle"], "x_jump": k["x_jump"]}
            i = r["patient"]
            mu = (alpha[:, i] * r["one"] + beta[:, i] * r["x_pre"]
                  + (fixed[:, i, :] * r["x_cycle"]).sum(axis=2))
            if self.config["jump"]:
                mu = mu + ((p["jump"][:, None, :] * T)[:, i, :] * r["x_jump"]).sum(axis=2)
        sdd = p["sd_drift"][col] if "sd_drift" in p else None
        loadings, q = self._loadings(load, p["sd_patient"][col], p["sd_patient_cycle"][col],
                                     sdd, np.sqrt,
                                     p["sd_jump"][col] if self.config["jump"] else None)
        if sd_alpha is not None:
            loadings[(len(exposure) - 1, q)] = sd_alpha + 0.0 * c
            q += 1
        terms = low_rank_terms(loadings, gram, b, c, k["n_visits"], q, p["sigma"][col],
                               sqrt=np.sqrt, log=np.log) if density else None
        return {"m": m, "natural": natural, "natural_free": natural_free, "fixed": fixed,
                "load": load, "mu": mu,
                "loadings": loadings, "q": q, "c": c, "terms": terms}

    def draw_effects(self, posterior: xr.Dataset, random_seed: int) -> tuple[xr.Dataset,
                                                                              xr.DataArray]:
        """Draw the integrated-out effects from their exact conditional posterior.

        Only for the marginal model (see :mod:`slopeshift.marginal`): for every posterior draw,
        the effects are drawn from N(H^-1 h, sigma^2 H^-1) given the sampled parameters, so the
        joint draws are draws from the full posterior. A cycle's combined deviation (slowing
        plus natural drift) is then split into its two parts from their exact conditional
        distribution.

        Parameters
        ----------
        posterior : xarray.Dataset
            Sampled parameters (chain, draw, ...).
        random_seed : int

        Returns
        -------
        effects : xarray.Dataset
            ``rho`` (treatment slowing; NaN where no cycle and for patients without a
            treatment effect), ``slope`` (the cycle's slope, points/month; NaN where no
            cycle), ``natural_slope`` (the rate expected without treatment: persistent rate
            plus systematic change), ``drift`` (the cycle's natural drift, points/month),
            ``slope_runin`` (the run-in slope), ``z_patient`` and ``z_patient_cycle``.
        log_likelihood : xarray.DataArray
            Marginal log density of each patient's scores (chain, draw, patient).
        """
        ratio = self.config["parameterization"] == "ratio"
        k = self._constants()
        has, p_idx = k["has"], k["p_idx"]
        n_p, n_k = has.shape
        rng = np.random.default_rng(random_seed)
        n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]

        def arr(name):
            return posterior[name].values.reshape(n_chain * n_draw, *posterior[name].shape[2:])

        par = self._posterior_arrays(posterior)
        sd_p, sd_c, sigma = par["sd_patient"], par["sd_patient_cycle"], par["sigma"]
        sd_d = par.get("sd_drift")
        jump = self.config["jump"]
        total = n_chain * n_draw
        names = ("rho", "slope", "z_patient_cycle", "natural_slope", "drift") + (
            ("jump_patient",) if jump else ())
        out = {n: np.empty((total, n_p, n_k)) for n in names}
        out["z_patient"] = np.empty((total, n_p))
        out["slope_runin"] = np.empty((total, n_p))
        loglik = np.empty((total, n_p))
        T = k["effect"]
        chunk = max(1, int(2e7 // max(len(p_idx) * k["x_all"].shape[1], 1)))
        for lo in range(0, total, chunk):
            sl = slice(lo, min(lo + chunk, total))
            col = (slice(None), None)
            p = {n: v[sl] for n, v in par.items()}
            b0 = p["beta_pre"]
            cond = self._conditional_terms(p, p["alpha"], b0)
            m, natural, fixed, load = cond["m"], cond["natural"], cond["fixed"], cond["load"]
            loadings, q, terms, c = cond["loadings"], cond["q"], cond["terms"], cond["c"]
            sdd = None if sd_d is None else sd_d[sl][col]
            eps = rng.standard_normal((q, *c.shape))
            zeta = marginal_draws(terms, sigma[sl][col], eps)
            if self.config.get("dropout") == "selection":
                ll_sel = self._select_draws(zeta, terms, loadings, q, fixed, sigma[sl][col],
                                            p, k, rng)
            # the cycle's combined deviation v = s * zeta_k, split into slowing and drift
            a_sd = np.abs(load) * sd_c[sl][:, None, None]  # SD of the slowing part of v
            v = np.stack([loadings[(j, j)] * zeta[j] for j in range(n_k)], axis=-1)
            if sdd is None:
                part = v
                drift_k = np.zeros_like(v)
            else:
                s2 = a_sd**2 + sd_d[sl][:, None, None] ** 2
                lam = a_sd**2 / s2
                cond_sd = np.sqrt(a_sd**2 * sd_d[sl][:, None, None] ** 2 / s2)
                part = lam * v + cond_sd * rng.standard_normal(v.shape)
                drift_k = v - part
            scale = load * sd_c[sl][:, None, None]
            safe = np.where(scale != 0, scale, 1.0)
            z_cyc = np.where(scale != 0, part / safe, rng.standard_normal(v.shape))
            z_pat = zeta[n_k]
            dev = sd_p[sl][:, None, None] * z_pat[:, :, None] + sd_c[sl][:, None, None] * z_cyc
            slope = fixed + load * sd_p[sl][:, None, None] * z_pat[:, :, None] + v
            rho = m + dev if ratio else (m + dev) / np.abs(cond["natural_free"])
            cell = has & (T > 0)
            out["rho"][sl] = np.where(cell, rho, np.nan)
            out["slope"][sl] = np.where(has, slope, np.nan)
            out["natural_slope"][sl] = np.where(has, natural, np.nan)
            out["drift"][sl] = np.where(has, drift_k, np.nan)
            out["z_patient_cycle"][sl] = z_cyc
            out["z_patient"][sl] = z_pat
            out["slope_runin"][sl] = b0 + (0.0 if sdd is None else sdd * zeta[n_k + 1])
            if jump:
                q0 = q - n_k
                zj = np.stack([zeta[q0 + j] for j in range(n_k)], axis=-1)
                J = p["jump"][:, None, :] + p["sd_jump"][:, None, None] * zj
                out["jump_patient"][sl] = np.where(cell, J, np.nan)
            loglik[sl] = terms.logp
            if self.config.get("dropout") == "selection":
                loglik[sl] = loglik[sl] + ll_sel
        coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                  "patient": self.design["patient"].values, "cycle": self.design["cycle"].values}
        dims = ("chain", "draw", "patient", "cycle")
        effects = xr.Dataset(
            {n: (dims, out[n].reshape(n_chain, n_draw, n_p, n_k)) for n in names}
            | {n: (dims[:3], out[n].reshape(n_chain, n_draw, n_p))
               for n in ("z_patient", "slope_runin")},
            coords=coords,
        )
        ll = xr.DataArray(loglik.reshape(n_chain, n_draw, n_p), dims=dims[:3],
                          coords={c: coords[c] for c in dims[:3]}, name="y")
        return effects, ll

    def initial_values(self) -> dict[str, np.ndarray]:
        """Starting values: each patient's least-squares run-in fit, on the population's side.

        In the ratio parameterisation a patient's pre-treatment slope has a second, far poorer
        local mode on the other side of zero (slope -> -slope with rho -> 2 - rho); a chain that
        starts there stays there (seen: a 2,000-patient trial in which 2 of 4 chains sat at
        +0.68 points/month for a patient whose posterior is at -0.66, after a noisy run-in with
        a least-squares slope of +0.17). So every patient starts at least half the population's
        median slope away from zero, on the population's side (declining, for ALSFRS-R), and
        these starts are not jittered. A patient who truly does not decline is flagged after
        fitting (:meth:`FitResult.near_zero_slopes`); the additive parameterisation has no such
        mode and starts at the plain run-in fit.

        Returns
        -------
        dict
            ``alpha`` (points), ``beta_pre`` (points/month), ``mu_alpha``, ``mu_beta`` and the
            SDs of the slowing effects. Patients with fewer than 2 run-in visits start near the
            population value (the slope 10% steeper).
        """
        d = self.design
        icpt = d["runin_intercept"].values
        mu_b = self._median_slope(-1.0)
        mu_a = float(np.nanmean(icpt)) if np.isfinite(icpt).any() else float(d["y"].mean())
        beta0 = self._beta_hat()
        start = {
            "alpha": np.where(np.isfinite(icpt), icpt, mu_a),
            "beta_pre": beta0,
            "mu_alpha": np.asarray(mu_a),
            "mu_beta": np.asarray(mu_b),
        }
        if self.domains:
            # each domain at its score at the visit nearest the first injection
            del start["alpha"], start["mu_alpha"]
            start |= _domain_starts(self.data, d["patient_index"].values, d["month"].values,
                                    d.sizes["patient"])
        if self.config["slowing"] != "none":  # a model without slowing has no effect SDs
            start |= {"log_sd_effects": np.asarray(np.log(0.25)),
                      "logit_patient_share": np.asarray(0.0)}
        return start

    def _beta_hat(self) -> np.ndarray:
        """Each patient's starting persistent rate (points/month), as in
        :meth:`initial_values`: the run-in least-squares slope, on the population's side."""
        d = self.design
        slope = d["runin_slope"].values
        mu_b = self._median_slope(-1.0)
        # without a run-in line (fewer than 2 run-in visits), a little off the population
        # start: a patient whose scores do not inform the slope would otherwise start with a
        # zero gradient, which nutpie rejects ("All initialization points failed")
        beta0 = np.where(np.isfinite(slope), slope, 1.1 * mu_b)
        if self.config["parameterization"] == "ratio":
            side = -1.0 if mu_b <= 0 else 1.0
            beta0 = side * np.maximum(side * beta0, 0.5 * max(abs(mu_b), 0.1))
        return beta0

    def _sampler_starts(self, start: dict) -> dict:
        """``start`` (of :meth:`initial_values`) in the sampler's coordinates: beta_i0 as the
        partly centred ``beta_pre_pc``, with ``sd_beta`` started at its prior median, or in
        the marginal model near its approximate conditional mean (``beta_pre_z`` = +-0.1)."""
        start = dict(start)
        tau = _prior_median(self.priors["sd_beta"])
        start["sd_beta"] = np.asarray(tau)
        if self._conditional_coordinates:
            # a tenth of a conditional SD off the conditional mean, away from zero slope: at
            # z = 0 a patient whose scores say nothing about the rate (one visit) would have a
            # zero gradient, which nutpie rejects ("All initialization points failed")
            side = -1.0 if float(start["mu_beta"]) <= 0 else 1.0
            start["beta_pre_z"] = np.full_like(start.pop("beta_pre"), 0.1 * side)
            return start
        start["beta_pre_pc"] = self._partly_centred(start.pop("beta_pre"),
                                                    float(start["mu_beta"]), tau)
        return start

    # ------------------------------------------------------------------ fitting
    def prior_predictive(self, draws: int = 4000, random_seed: int = 0,
                         threshold: float = 0.25) -> pd.DataFrame:
        """What the priors imply before any score; see
        :func:`slopeshift.prior_check.prior_predictive`."""
        from slopeshift.prior_check import prior_predictive

        return prior_predictive(self, draws, random_seed, threshold)

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
        mass_matrix: str = "diag",
    ) -> FitResult:
        """Sample the posterior.

        Parameters
        ----------
        draws, tune, chains : int
            Posterior draws per chain, tuning steps per chain, number of chains.
        random_seed : int, optional
            Seed; the same data, options and seed give identical numbers.
        sampler : {"nutpie", "pymc", "numpyro"}, default "nutpie"
            NUTS implementation. nutpie compiles the model once per structure and process:
            another SlopeShiftModel with other data of the same sizes or other prior values
            reuses the compiled model (:mod:`slopeshift.compiled`). ``"numpyro"`` needs
            the ``jax`` extra (``pip install slopeshift[jax]``).
        cores : int, optional
            Chains run in parallel on this many cores (default: all).
        target_accept : float, optional
            NUTS target acceptance rate. By default 0.9 for trials of fewer than
            :data:`~slopeshift.fit.LARGE_TRIAL` (100) patients, controls included, and 0.95 for
            larger ones and for the four-domain model. 0.9 (above the samplers' 0.8) removed the
            occasional divergence seen with 20-patient trials. At 150-200 patients 0.9 left R-hat
            above 1.01 in 6 of 6 trials of two generators and 0.95 in none, with about twice the ESS
            per draw at 1.7 times the sampling time (``benchmarks/bench_settings.py``; docs "Speed
            and memory"). Raise it if divergences remain.
        progressbar : bool, default True
            Show a progress bar while sampling.
        check : bool, default True
            Warn (:class:`slopeshift.ConvergenceWarning`) when diagnostics are out of bounds.
        mass_matrix : {"diag", "low_rank"}, default "diag"
            nutpie's mass-matrix adaptation. ``"low_rank"`` learns the strongest posterior
            correlations too; on two-arm trials of 60 + 60 patients it raised the smallest
            ESS of mu_beta from 136 to 2,800 (sd_beta from 292 to 355) at about 7 times the
            sampling time; at 200 patients it took 40-50 times the sampling time
            (``benchmarks/bench_settings.py``). Try it when population parameters of a small
            trial mix slowly (nutpie only); for large trials run more ``draws`` instead.

        Returns
        -------
        FitResult
        """
        from slopeshift.fit import sample_model

        return sample_model(
            self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
            sampler=sampler, cores=cores, target_accept=target_accept,
            progressbar=progressbar, check=check, mass_matrix=mass_matrix,
        )

    def __repr__(self) -> str:
        o = self.data.overview()
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return (f"SlopeShiftModel({o['patients']} patients, {o['visits']} visits, "
                f"{o['injections']} injections; {opts})")


def _exposure_block(s_zz: dict, exposure: list[int]) -> dict:
    """A_i = X_i' X_i over the exposures, as the block of S_zz (``{(d, e): ...}``, d <= e)
    that :func:`~slopeshift.marginal.low_rank_terms` takes: ``{(r, s): ...}``, both orders."""
    return {(r, s): s_zz[min(a, e), max(a, e)]
            for r, a in enumerate(exposure) for s, e in enumerate(exposure)
            if (min(a, e), max(a, e)) in s_zz}


class _Pack:
    """Float data packed into one shared vector, handed out as slices.

    nutpie wraps the compiled log density in a Numba callback that unpacks every shared
    variable; with 57 of them that wrapper took about 55 s to compile, with a handful 1-2 s.
    So every float input (data and prior parameters) is a slice of one vector ``name``; its
    value is set by :meth:`finish`, once the graph is built.
    """

    def __init__(self, name: str):
        self.var = pytensor.shared(np.zeros(0), name=name)
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, value):
        a = np.asarray(value, dtype=float)
        start = self.size
        self.parts.append(a.ravel())
        self.size += a.size
        return self.var[start:self.size].reshape(a.shape)

    def finish(self) -> None:
        self.var.set_value(np.concatenate(self.parts) if self.parts else np.zeros(0))


class _GraphConstants(Mapping):
    """The model's constants as graph inputs, made on first use (only what the graph uses
    becomes an input): floats as slices of the data pack, integer and boolean arrays as
    shared variables ``data_<name>``, structural ones as they are."""

    def __init__(self, values: dict, structural: Sequence[str], pack: _Pack):
        self._values, self._structural, self._pack = values, structural, pack
        self._made: dict = {}

    def __getitem__(self, name: str):
        if name in self._structural:
            return self._values[name]
        if name not in self._made:
            value = np.asarray(self._values[name])
            self._made[name] = (self._pack.add(value) if value.dtype.kind == "f"
                                else pytensor.shared(value, name=f"data_{name}"))
        return self._made[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _SharedPrior:
    """A prior whose parameters are PyTensor shared variables (see SlopeShiftModel._prior)."""

    def __init__(self, dist: str, params: dict):
        self.dist, self.params = dist, params

    def create(self, name: str, **kwargs):
        return getattr(pm, self.dist)(name, **self.params, **kwargs)

    def as_dist(self):
        return getattr(pm, self.dist).dist(**self.params)


def _check_domains(data: TrialData, *, jump: bool, effects: str | None) -> None:
    """Reasons the four-domain model cannot take these data or options, as clear errors."""
    from slopeshift.floors import has_items

    if not has_items(data):
        raise ValueError(
            "domains=True models the four ALSFRS-R domains and needs the 12 items "
            "(q1..q9, r1..r3, or item_cols=) in the visits table; these data give "
            f"{data.outcome!r} as a total."
        )
    if jump:
        raise ValueError("jump=True is not available with domains=True.")
    if effects == "marginal":
        raise ValueError(
            "effects='marginal' needs the Normal likelihood without censoring; the domain "
            "model censors each domain at 0, so its effects are latent."
        )
    values = data.visits[list(ALSFRS_DOMAINS)]
    bad = ~np.isfinite(values.to_numpy(float)).all(axis=1)
    if bad.any():
        rows = data.visits.index[bad][:8].tolist()
        raise ValueError(f"domain subscores missing in visits rows {rows}.")


def _domain_floor_array(data: TrialData, design: xr.Dataset) -> xr.DataArray:
    """(patient, cycle, domain) factors of :func:`slopeshift.floors.domain_floor_factors`;
    1 where a patient has no such cycle or no run-in to weigh the items by."""
    from slopeshift.floors import domain_floor_factors

    pats = [str(p) for p in design["patient"].values]
    cycles = [int(c) for c in design["cycle"].values]
    doms = list(ALSFRS_DOMAINS)
    out = np.ones((len(pats), len(cycles), len(doms)))
    ff = domain_floor_factors(data)
    pos = {p: i for i, p in enumerate(pats)}
    for p, k, dom, f in zip(ff["patient"], ff["cycle"], ff["domain"], ff["floor_factor"],
                            strict=True):
        if np.isfinite(f):
            out[pos[str(p)], cycles.index(int(k)), doms.index(dom)] = f
    return xr.DataArray(out, dims=("patient", "cycle", "domain"),
                        coords={"patient": design["patient"].values,
                                "cycle": design["cycle"].values, "domain": doms})


def _active_domains(y: np.ndarray, p_idx: np.ndarray, n_patients: int) -> np.ndarray:
    """(patient, domain) 1.0 where the domain is above its floor at some visit of the patient,
    else 0.0; a patient with no such domain counts every domain active."""
    inside = (y > DOMAIN_FLOOR).astype(float)
    active = np.zeros((n_patients, y.shape[1]))
    np.maximum.at(active, p_idx, inside)
    active[active.sum(axis=1) == 0] = 1.0
    return active


def _domain_starts(data: TrialData, p_idx: np.ndarray, month: np.ndarray,
                   n_patients: int) -> dict[str, np.ndarray]:
    """alpha_domain starts: each patient's domain scores at the visit nearest month 0."""
    y = data.visits[list(ALSFRS_DOMAINS)].to_numpy(float)
    order = np.lexsort((np.abs(month), p_idx))
    first = np.unique(p_idx[order], return_index=True)[1]
    start = np.full((n_patients, y.shape[1]), np.nan)
    start[p_idx[order][first]] = y[order][first]
    start = np.where(np.isfinite(start), start, np.nanmean(start, axis=0))
    return {"alpha_domain": start, "mu_alpha_domain": start.mean(axis=0)}


def _check_enrolment(enrolment: float | str | None) -> float | str | None:
    if enrolment is None or enrolment == "auto":
        return enrolment
    if isinstance(enrolment, str) or not np.isfinite(float(enrolment)):
        raise ValueError(
            "enrolment must be 'auto', None (all-comers) or the run-in slope below which "
            f"patients were enrolled, in outcome units/month (e.g. -0.5); got {enrolment!r}."
        )
    return float(enrolment)


def _auto_dropout(data: TrialData, marginal: bool) -> str:
    """What ``dropout="auto"`` chooses: ``"selection"`` for the marginal model (``marginal``)
    of a single-arm analysis (no injected patient outside the treated arm) in which some
    injected patient was followed for less (:func:`slopeshift.classical.followed_for_less`),
    else ``"ignore"``."""
    from slopeshift.classical import followed_for_less

    pts = data.patients
    if not marginal or ("arm" in pts and (pts["treated"] & (pts["arm"] != "treated")).any()):
        return "ignore"
    less = followed_for_less(data)
    return "selection" if len(less) and less["for_less"].any() else "ignore"


def _choose_effects(effects: str | None, likelihood: str, censored: bool, jump: bool) -> str:
    """Integrate the slowing effects out when the likelihood allows it (Normal, uncensored)."""
    exact = likelihood == "normal" and not censored
    if effects is None:
        return "marginal" if exact else "latent"
    if effects not in ("marginal", "latent"):
        raise ValueError(f"effects must be 'marginal' or 'latent', not {effects!r}.")
    if effects == "marginal" and not exact:
        raise ValueError(
            "effects='marginal' needs the Normal likelihood without censoring; "
            "use effects='latent' (the default for these options)."
        )
    return effects


def _is_marginal(effects: str, domains: bool) -> bool:
    """Whether a model with these chosen ``effects`` (see :func:`_choose_effects`) integrates
    each patient's slopes out exactly: what ``dropout="selection"`` needs (totals only)."""
    return effects == "marginal" and not domains


def _prior_median(prior: Prior) -> float:
    """The median of a prior of a positive scale (used only to choose sampler coordinates)."""
    p = prior.params
    if prior.dist == "LogNormal":
        return math.exp(p["mu"])
    if prior.dist == "HalfNormal":
        return 0.6745 * p["sigma"]
    if prior.dist in ("HalfStudentT", "Gamma"):
        import scipy.stats  # not at import time: PyMC does not load it

        if prior.dist == "Gamma":
            return float(scipy.stats.gamma.median(p["alpha"], scale=1.0 / p["beta"]))
        return float(scipy.stats.t.ppf(0.75, p["nu"])) * p["sigma"]  # median of |t_nu|
    if prior.dist == "Exponential":
        return math.log(2.0) / p["lam"]
    return max(abs(p.get("mu", 0.0)), p.get("sigma", 1.0))  # a scale prior on the real line
