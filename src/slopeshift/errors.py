"""Error and warning classes raised by slopeshift."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConvergenceWarning", "DataValidationError", "DataWarning", "SlopeShiftWarning"]

# Warnings point at the user's line: frames inside the package are skipped.
_PACKAGE_DIR = (str(Path(__file__).parent),)


class DataValidationError(ValueError):
    """Input data that cannot be analysed.

    Problems are collected before raising, stage by stage (missing columns first, then values
    and times, then the structure of the trial), so one error lists every problem of its stage.

    Parameters
    ----------
    problems : list of str
        One human-readable line per problem; each names the column, patient or row at fault.
    """

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        n = len(self.problems)
        head = "1 problem" if n == 1 else f"{n} problems"
        super().__init__(f"{head} in the input data:\n" + "\n".join(f"  - {p}" for p in problems))


class SlopeShiftWarning(UserWarning):
    """Base class of slopeshift's warnings."""


class DataWarning(SlopeShiftWarning):
    """Data that can be analysed but deserve attention (few run-in visits, dropped rows, ...)."""


class ConvergenceWarning(SlopeShiftWarning):
    """The sampler's diagnostics are out of bounds: the posterior may not be trustworthy."""
