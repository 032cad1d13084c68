"""Natural history learnt from an untreated cohort, to serve as the prior of a single-arm trial.

A single-arm trial cannot tell a patient's treatment response from the drift of their natural
rate of decline: both change the slope of one cycle. slopeshift's defaults take the drift and the
acceleration from published natural history (docs/model.md). A user who has untreated patients
of their own (a registry extract, a placebo arm of an earlier trial) can fit those parameters
there instead, with :meth:`NaturalHistory.from_cohort`, and pass them to the trial's model as
priors, discounted as a power prior would be::

    nh = NaturalHistory.from_cohort(registry_visits, period_months=6.0, random_seed=1)
    model = SlopeShiftModel(trial, priors=nh.priors(weight=0.5))

The cohort is fitted with the trial model itself, every patient an ``external`` patient without
treatment effect, the follow-up cut into periods whose rates drift (sham period boundaries).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slopeshift.data import TrialData
from slopeshift.errors import DataWarning
from slopeshift.priors import Prior

__all__ = ["NaturalHistory"]

#: Parameters a cohort informs, and the prior family each is summarised by.
_FAMILIES = {"sd_drift": "LogNormal", "acceleration": "Normal", "mu_beta": "Normal",
             "sd_beta": "LogNormal"}


@dataclass(frozen=True)
class NaturalHistory:
    """Posterior summaries of natural-history parameters, usable as a trial's priors.

    Attributes
    ----------
    outcome : str
        The outcome the cohort measured (``"alsfrs_r"``, ``"fvc"``, ...).
    summaries : dict
        ``{name: (location, scale)}`` of each parameter's posterior on the scale of its prior
        family: for ``sd_drift`` and ``sd_beta`` the mean and SD of the log (units/month), for
        ``acceleration`` (units/month per month) and ``mu_beta`` (units/month) the mean and SD.
    n_patients, n_periods : int
        Patients of the cohort and periods (run-in plus cycles) with visits.
    period_months : float or None
        Length of the periods the cohort was cut into (None: boundaries given by the data).
    diagnostics_ok : bool
        Whether the cohort's fit met R-hat <= 1.01, ESS >= 400 and had no divergence.
    """

    outcome: str
    summaries: dict = field(default_factory=dict)
    n_patients: int = 0
    n_periods: int = 0
    period_months: float | None = None
    diagnostics_ok: bool = False

    @classmethod
    def from_cohort(
        cls,
        cohort: TrialData | pd.DataFrame,
        *,
        outcome: str = "alsfrs_r",
        period_months: float = 6.0,
        patient_col: str = "patient",
        time_col: str = "time",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        progressbar: bool = False,
    ) -> NaturalHistory:
        """Fit the natural-change parameters on untreated patients.

        Parameters
        ----------
        cohort : TrialData or pandas.DataFrame
            Untreated patients. A visits table (patient, time in months or dates, outcome) is
            cut into periods of ``period_months`` from each patient's first visit; a
            ``TrialData`` whose injections table gives sham period boundaries is used as it is
            (every patient is taken as ``external``: no treatment effect).
        outcome : str, default "alsfrs_r"
            Outcome column of a visits table.
        period_months : float, default 6.0
            Length of each period (months) when cutting a visits table. Drift is estimated
            between periods, so choose about the length of the trial's cycles (3-6 months).
        patient_col, time_col : str
            Columns of a visits table.
        draws, tune, chains : int
            Sampler settings for the cohort's fit.
        random_seed : int, optional
        progressbar : bool, default False

        Returns
        -------
        NaturalHistory
        """
        data = cohort if isinstance(cohort, TrialData) else _cut_into_periods(
            cohort, outcome, period_months, patient_col, time_col)
        if isinstance(cohort, TrialData):
            period_months = None
        patients = data.patients.copy()
        patients["arm"] = "external"
        data = TrialData(visits=data.visits, injections=data.injections, patients=patients,
                         outcome=data.outcome, time_kind=data.time_kind, dropped=data.dropped,
                         covariates=[], notes=list(data.notes))
        from slopeshift.model import SlopeShiftModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # "natural history only": intended
            model = SlopeShiftModel(data, enrolment=None)
        fit = model.fit(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                        progressbar=progressbar, check=False)
        post = fit.posterior
        summaries = {}
        for name, family in _FAMILIES.items():
            x = post[name].values.ravel()
            x = np.log(x) if family == "LogNormal" else x
            summaries[name] = (float(x.mean()), float(x.std()))
        n_periods = int(data.patients["n_runin_visits"].gt(0).sum()
                        + fit.design["observed"].values.sum())
        return cls(outcome=data.outcome, summaries=summaries, n_patients=len(data.patients),
                   n_periods=n_periods, period_months=period_months,
                   diagnostics_ok=bool(fit.diagnostics().attrs["ok"]))

    def priors(self, weight: float = 1.0, population: bool = False) -> dict[str, Prior]:
        """The cohort's posterior as priors for a trial's model, discounted by ``weight``.

        Parameters
        ----------
        weight : float, default 1.0
            Power-prior weight a0 in (0, 1]: the cohort counts as ``weight`` times its size
            (each prior's SD is divided by sqrt(weight); a Normal approximation of a power
            prior). 0.5 is a common choice when the cohort may differ from the trial's
            patients.
        population : bool, default False
            Also return priors for the population of persistent rates (``mu_beta``,
            ``sd_beta``). Off by default: a trial's patients are selected (enrolment rules)
            and rarely share a registry's mean rate, whereas drift and acceleration transfer.

        Returns
        -------
        dict of str to Prior
            ``sd_drift`` (LogNormal) and ``acceleration`` (Normal), plus ``mu_beta`` and
            ``sd_beta`` with ``population=True``; pass as ``SlopeShiftModel(priors=...)``.
        """
        if not 0.0 < float(weight) <= 1.0:
            raise ValueError(f"weight must be in (0, 1] (a power-prior weight); got {weight!r}.")
        names = ["sd_drift", "acceleration"] + (["mu_beta", "sd_beta"] if population else [])
        inflate = 1.0 / np.sqrt(float(weight))
        out = {}
        for name in names:
            loc, scale = self.summaries[name]
            out[name] = Prior(_FAMILIES[name], mu=loc, sigma=max(scale * inflate, 1e-6))
        return out

    def table(self) -> pd.DataFrame:
        """The cohort's estimates on their natural scales (posterior median and 95% interval).

        Returns
        -------
        pandas.DataFrame
            One row per parameter: ``parameter``, ``median``, ``ci_2.5``, ``ci_97.5``
            (units/month; acceleration in units/month per month), from the Normal or
            log-Normal summary.
        """
        rows = []
        for name, (loc, scale) in self.summaries.items():
            q = loc + np.array([0.0, -1.959964, 1.959964]) * scale
            q = np.exp(q) if _FAMILIES[name] == "LogNormal" else q
            rows.append({"parameter": name, "median": q[0], "ci_2.5": q[1], "ci_97.5": q[2]})
        return pd.DataFrame(rows)


def _cut_into_periods(visits: pd.DataFrame, outcome: str, period_months: float,
                      patient_col: str, time_col: str) -> TrialData:
    """Sham period boundaries every ``period_months`` from each patient's first visit."""
    if not np.isfinite(period_months) or period_months <= 0:
        raise ValueError(f"period_months must be a positive number of months; got "
                         f"{period_months!r}.")
    times = visits[time_col]
    dates = not pd.api.types.is_numeric_dtype(times)
    t = (pd.to_datetime(times) if dates else times.astype(float))
    rows = []
    for pid, grp in t.groupby(visits[patient_col], sort=True):
        first, last = grp.min(), grp.max()
        j = 1
        while True:
            step = (pd.Timedelta(days=round(j * period_months * 30.4375)) if dates
                    else j * period_months)
            bound = first + step
            if bound >= last:
                break
            rows.append({patient_col: pid, time_col: bound})
            j += 1
    if not rows:
        raise ValueError(
            f"no patient of the cohort has more than {period_months:g} months of follow-up: "
            "drift between periods cannot be estimated; pass a shorter period_months."
        )
    injections = pd.DataFrame(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return TrialData.from_frames(visits, injections, outcome=outcome,
                                     patient_col=patient_col, time_col=time_col)
