"""slopeshift: Bayesian analysis of slowing of disease progression across treatment cycles."""

from slopeshift.classical import classical_analysis
from slopeshift.cohort import NaturalHistory
from slopeshift.data import TrialData
from slopeshift.errors import ConvergenceWarning, DataValidationError, DataWarning
from slopeshift.fit import FitResult
from slopeshift.model import SlopeShiftModel
from slopeshift.natural import simulate_realistic_trial, simulate_untreated_cohort
from slopeshift.priors import Prior, default_priors, effect_priors
from slopeshift.simulate import example_trial, simulate_trial

__all__ = [
    "ConvergenceWarning",
    "DataValidationError",
    "DataWarning",
    "FitResult",
    "NaturalHistory",
    "Prior",
    "SlopeShiftModel",
    "TrialData",
    "classical_analysis",
    "default_priors",
    "effect_priors",
    "example_trial",
    "simulate_realistic_trial",
    "simulate_trial",
    "simulate_untreated_cohort",
]
