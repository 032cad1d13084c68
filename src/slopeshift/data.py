"""Trial data: reading, validating and converting visits, injections and patient covariates.

Time is converted to months since each patient's first injection (1 month = 30.4375 days).
A patient never injected keeps their visits (they inform the population pre-treatment slope);
their months are counted from their last visit, so all their times are <= 0.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from slopeshift.errors import _PACKAGE_DIR, DataValidationError, DataWarning

__all__ = [
    "ALSFRS_DOMAINS", "ALSFRS_ITEMS", "DAYS_PER_MONTH", "OUTCOMES", "OutcomeSpec", "TrialData",
    "outcome_spec",
]

#: Days in a month: times given as dates become months since the first injection.
DAYS_PER_MONTH = 30.4375

#: Default column names of the 12 ALSFRS-R items, in questionnaire order (1-9, R1-R3).
ALSFRS_ITEMS: tuple[str, ...] = (
    "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "r1", "r2", "r3",
)  # fmt: skip

#: Patients-table column giving each patient's arm, and the spellings it accepts.
ARM_COLUMN = "arm"
ARMS = ("treated", "control", "external")
_ARM_ALIASES = {
    "treated": "treated", "treatment": "treated", "active": "treated", "experimental": "treated",
    "control": "control", "placebo": "control", "sham": "control",
    "external": "external", "reference": "external", "natural history": "external",
}

#: Domain subscores, as positions (0-based) into the 12 items.
ALSFRS_DOMAINS: dict[str, tuple[int, int, int]] = {
    "bulbar": (0, 1, 2),
    "fine_motor": (3, 4, 5),
    "gross_motor": (6, 7, 8),
    "respiratory": (9, 10, 11),
}


@dataclass(frozen=True)
class OutcomeSpec:
    """What slopeshift knows about an outcome scale."""

    name: str
    label: str
    unit: str
    valid_range: tuple[float, float] | None
    censor_bounds: tuple[float | None, float | None]
    integer: bool


#: Outcomes with built-in validation and default priors. Any other column name is accepted as a
#: continuous outcome without range checks (give priors for it).
OUTCOMES: dict[str, OutcomeSpec] = {
    "alsfrs_r": OutcomeSpec("alsfrs_r", "ALSFRS-R total", "points", (0.0, 48.0), (0.0, 48.0), True),
    "fvc": OutcomeSpec("fvc", "FVC", "% predicted", (0.0, 200.0), (0.0, None), False),
}


def outcome_spec(outcome: str) -> OutcomeSpec:
    """Return the :class:`OutcomeSpec` of ``outcome`` (a generic one for unknown outcomes)."""
    if outcome in OUTCOMES:
        return OUTCOMES[outcome]
    return OutcomeSpec(outcome, outcome, "units", None, (None, None), False)


_WHERE = re.compile(r"^(?P<table>.+?) (?:line|row)s? (?P<first>\d+)")


class _Problems:
    """Collects every problem found in the input, to raise them together in file order.

    Problems are listed table by table (in the order the tables were first named), within a
    table the whole-table ones first, then by the first line or row they name.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, msg: str) -> None:
        self.errors.append(msg)

    def _ordered(self) -> list[str]:
        tables: dict[str, int] = {}
        keys = []
        for pos, msg in enumerate(self.errors):
            m = _WHERE.match(msg)
            table = m.group("table") if m else msg.split(":", 1)[0]
            rank = tables.setdefault(table, len(tables))
            keys.append((rank, int(m.group("first")) if m else -1, pos))
        return [msg for _, msg in sorted(zip(keys, self.errors, strict=True))]

    def raise_if_any(self) -> None:
        if self.errors:
            raise DataValidationError(self._ordered())


def _rows(labels: Sequence, limit: int = 8) -> str:
    labels = list(labels)
    shown = ", ".join(str(x) for x in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


@dataclass
class _Table:
    """A raw input table with the words used to point at its rows in messages."""

    frame: pd.DataFrame
    name: str
    row_word: str = "row"

    def where(self, labels: Sequence) -> str:
        labels = list(labels)
        word = self.row_word + ("s" if len(labels) > 1 else "")
        return f"{self.name} {word} {_rows(labels)}"


def _patients_of(ids: pd.Series | None, labels: Sequence) -> str:
    """' (patient A, B)' for the rows ``labels``, or '' without ids."""
    if ids is None:
        return ""
    who = [str(x) for x in pd.unique(ids.loc[list(labels)].dropna())]
    if not who:
        return ""
    return f" (patient{'s' if len(who) > 1 else ''} {_rows(who)})"


def _parse_times(
    tab: _Table, col: str, problems: _Problems, ids: pd.Series | None = None
) -> tuple[pd.Series, str | None]:
    """Parse a time column as numbers (months) or dates; returns the series and its kind."""
    raw = tab.frame[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        kind = "date"
        parsed = raw
    elif pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        kind = "months"
        parsed = raw.astype(float)
    else:
        as_num = pd.to_numeric(raw, errors="coerce")
        if as_num.notna().sum() >= raw.notna().sum():
            kind, parsed = "months", as_num.astype(float)
        else:
            # mostly numbers with a few unreadable values: months, and those values are the
            # problem (not every number read as a bad date)
            as_date = pd.to_datetime(raw.where(as_num.isna()), errors="coerce", format="mixed")
            if as_num.notna().sum() >= as_date.notna().sum():
                kind, parsed = "months", as_num.astype(float)
            else:
                kind = "date"
                parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    bad = parsed.isna()
    if kind == "months":
        bad |= ~np.isfinite(parsed.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        examples = ", ".join(repr(v) for v in raw[bad].head(3).tolist())
        what = "a number of months" if kind == "months" else "a date (e.g. 2021-03-15)"
        problems.add(
            f"{tab.where(tab.frame.index[bad])}{_patients_of(ids, tab.frame.index[bad])}: "
            f"column '{col}' must be {what}; found missing, infinite or unreadable values "
            f"({examples})."
        )
    return parsed, kind


def _require_columns(tab: _Table, cols: Sequence[str], problems: _Problems, hint: str) -> bool:
    missing = [c for c in cols if c not in tab.frame.columns]
    if missing:
        problems.add(
            f"{tab.name}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {list(map(str, tab.frame.columns))}. {hint}"
        )
        return False
    return True


def _patient_ids(tab: _Table, col: str, problems: _Problems) -> pd.Series:
    ids = tab.frame[col]
    bad = ids.isna()
    if bad.any():
        problems.add(f"{tab.where(tab.frame.index[bad])}: patient id in '{col}' is missing.")
    return ids.map(lambda v: str(v).strip() if pd.notna(v) else v)


@dataclass
class TrialData:
    """Validated visits and injections of a trial, with times in months since first injection.

    Build it with :meth:`from_frames` or :meth:`from_csv`, never directly.

    Attributes
    ----------
    visits : pandas.DataFrame
        One row per assessment: ``patient`` (str), ``time`` (as given), ``month`` (months since the
        patient's first injection; for untreated patients, since their last visit), ``value`` (the
        outcome), and for ALSFRS-R given as items, the four domain subscores and the 12 items
        (as ``q1``..``q9``, ``r1``..``r3`` whatever their names in the input).
    injections : pandas.DataFrame
        One row per injection: ``patient``, ``time``, ``month``, ``cycle`` (1, 2, ...) and any
        extra per-cycle columns given (e.g. ``dose``).
    patients : pandas.DataFrame
        Indexed by patient id: ``treated`` (received at least one injection, real or sham),
        ``n_injections``, ``n_visits``, ``n_runin_visits``, ``arm`` ("treated", "control" or
        "external"; "treated" unless the patients table says otherwise) and the numeric
        per-patient covariates given.
    outcome : str
        The outcome column (``"alsfrs_r"``, ``"fvc"`` or a user column).
    time_kind : {"months", "date"}
        How times were given.
    dropped : pandas.DataFrame
        Rows removed from the input, with the reason (empty unless ``on_missing="drop"``).
    covariates : list of str
        Per-patient covariate columns available for the model.
    """

    visits: pd.DataFrame
    injections: pd.DataFrame
    patients: pd.DataFrame
    outcome: str
    time_kind: str
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    covariates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_frames(
        cls,
        visits: pd.DataFrame,
        injections: pd.DataFrame,
        patients: pd.DataFrame | None = None,
        *,
        outcome: str = "alsfrs_r",
        patient_col: str = "patient",
        time_col: str = "time",
        value_col: str | None = None,
        cycle_col: str = "cycle",
        item_cols: Sequence[str] | None = None,
        on_missing: str = "raise",
        _names: tuple[str, str, str, str] = ("visits", "injections", "patients", "row"),
    ) -> TrialData:
        """Validate and convert trial tables.

        Parameters
        ----------
        visits : pandas.DataFrame
            One row per assessment with a patient id, a time and the outcome. Times are months
            (numbers, any origin) or dates; both tables must use the same kind.
        injections : pandas.DataFrame
            One row per injection: patient id, time, optionally the cycle number (``cycle_col``;
            otherwise cycles are numbered in time order) and per-cycle covariates (e.g. dose).
        patients : pandas.DataFrame, optional
            One row per patient with per-patient covariates (age in years, sex, disease duration
            in months, ...). Two-level text columns (e.g. sex) are coded 0/1. A column ``arm``
            is not a covariate: it puts a patient in the ``"treated"`` arm (the default), a
            concurrent ``"control"`` arm (placebo; sham injections given in ``injections``
            like real ones) or an ``"external"`` untreated reference cohort (period boundaries
            given as sham injections). Controls and external patients inform the natural
            history and carry no treatment effect.
        outcome : str, default "alsfrs_r"
            ``"alsfrs_r"`` (ALSFRS-R total, 0-48 points), ``"fvc"`` (% predicted) or any numeric
            column of ``visits`` (then give priors to the model).
        patient_col, time_col : str
            Column names of the patient id and the time, in every table.
        value_col : str, optional
            Column holding the outcome; defaults to ``outcome``.
        cycle_col : str, default "cycle"
            Column of ``injections`` with cycle numbers, used when present.
        item_cols : sequence of 12 str, optional
            ALSFRS-R item columns (1-9, R1-R3), used when the total column is absent. Defaults to
            ``q1..q9, r1..r3``. The total and domain subscores (bulbar, fine_motor, gross_motor,
            respiratory) are computed; the items are kept under the default names.
        on_missing : {"raise", "drop"}, default "raise"
            What to do with visits whose outcome is missing. ``"drop"`` removes them, warns with
            the count and lists them in :attr:`dropped`.

        Returns
        -------
        TrialData

        Raises
        ------
        DataValidationError
            Listing every problem found, each naming the table, row, column and patient.
        """
        if on_missing not in ("raise", "drop"):
            raise ValueError(f"on_missing must be 'raise' or 'drop', not {on_missing!r}.")
        vname, iname, pname, row_word = _names
        spec = outcome_spec(outcome)
        value_col = value_col or outcome
        items = list(item_cols) if item_cols is not None else list(ALSFRS_ITEMS)
        if item_cols is not None and len(items) != 12:
            raise ValueError(f"item_cols must name the 12 ALSFRS-R items; got {len(items)}.")
        problems = _Problems()
        vt = _Table(visits.copy(), vname, row_word)
        it = _Table(injections.copy(), iname, row_word)

        use_items = outcome == "alsfrs_r" and value_col not in vt.frame.columns and all(
            c in vt.frame.columns for c in items
        )
        ok_v = _require_columns(
            vt,
            [patient_col, time_col] + (items if use_items else [value_col]),
            problems,
            f"Visits need a patient id, a time and the outcome, e.g. columns "
            f"{patient_col}, {time_col}, {value_col}"
            + (" (or the 12 items q1..q9, r1..r3)." if outcome == "alsfrs_r" else "."),
        )
        ok_i = _require_columns(
            it, [patient_col, time_col], problems,
            f"Injections need e.g. columns {patient_col}, {time_col} (optionally {cycle_col}).",
        )
        if vt.frame.empty:
            problems.add(f"{vt.name}: the table has a header but no rows (no visits).")
        problems.raise_if_any()
        del ok_v, ok_i

        # ---- visits
        v = vt.frame
        v_ids = _patient_ids(vt, patient_col, problems)
        v_time, v_kind = _parse_times(vt, time_col, problems, v_ids)
        domains = None
        if use_items:
            item_vals = _check_items(vt, items, problems)
            value = item_vals.sum(axis=1, min_count=12)
            domains = pd.DataFrame(
                {d: item_vals.iloc[:, list(pos)].sum(axis=1, min_count=3)
                 for d, pos in ALSFRS_DOMAINS.items()}
            )
        else:
            value = pd.to_numeric(v[value_col], errors="coerce")
            nonnum = value.isna() & v[value_col].notna()
            if nonnum.any():
                ex = ", ".join(repr(x) for x in v.loc[nonnum, value_col].head(3))
                problems.add(
                    f"{vt.where(v.index[nonnum])}: column '{value_col}' is not a number ({ex})."
                )
        value = value.astype(float)
        missing = v[items].isna().any(axis=1) if use_items else v[value_col].isna()
        dropped_rows = []
        if missing.any():
            if on_missing == "drop":
                for idx in v.index[missing]:
                    dropped_rows.append(
                        {"table": vname, "row": idx, "patient": v_ids[idx],
                         "reason": f"missing {spec.label}"}
                    )
            else:
                problems.add(
                    f"{vt.where(v.index[missing])}: {spec.label} is missing"
                    f" (patients {_rows(pd.unique(v_ids[missing]))}). Fill it in, or pass "
                    f"on_missing='drop' to drop these visits (they are then reported)."
                )
        inf = np.isinf(value)
        if inf.any():
            problems.add(f"{vt.where(v.index[inf])}: {spec.label} is infinite.")
        if spec.valid_range is not None:
            lo, hi = spec.valid_range
            out = (value < lo) | (value > hi)
            if out.any():
                ex = ", ".join(f"{x:g}" for x in value[out].head(3))
                col = "the sum of the items" if use_items else f"column '{value_col}'"
                problems.add(
                    f"{vt.where(v.index[out])}{_patients_of(v_ids, v.index[out])}: {col}: "
                    f"{spec.label} out of range {lo:g}-{hi:g} ({spec.unit}); found {ex}."
                )
        if spec.integer and not use_items:
            frac = value.notna() & np.isfinite(value) & (value != np.round(value))
            if frac.any():
                ex = ", ".join(f"{x:g}" for x in value[frac].head(3))
                problems.add(
                    f"{vt.where(v.index[frac])}: {spec.label} must be a whole number of "
                    f"points; found {ex}."
                )

        # ---- injections
        inj = it.frame
        i_ids = _patient_ids(it, patient_col, problems)
        i_time, i_kind = _parse_times(it, time_col, problems, i_ids)
        if v_kind and i_kind and v_kind != i_kind and len(inj):
            problems.add(
                f"{vname} give '{time_col}' as {v_kind} but {iname} give it as {i_kind}; "
                "use the same kind (both dates, or both months) in every table."
            )
        problems.raise_if_any()

        keep = ~v.index.isin([r["row"] for r in dropped_rows])
        vis = pd.DataFrame(
            {"patient": v_ids[keep].to_numpy(), "time": v[time_col][keep].to_numpy(),
             "_t": _to_months(v_time[keep], v_kind), "value": value[keep].to_numpy(),
             "_row": v.index[keep]}
        )
        if domains is not None:
            for d in ALSFRS_DOMAINS:
                vis[d] = domains[d][keep].to_numpy()
            # the items themselves (under their standard names): floors are item-level
            for std, col in zip(ALSFRS_ITEMS, items, strict=True):
                vis[std] = item_vals[col][keep].to_numpy()

        # duplicated visits
        dup = vis.duplicated(["patient", "_t"], keep=False)
        if dup.any():
            for pid, grp in vis[dup].groupby("patient", sort=True):
                problems.add(
                    f"{vt.where(grp['_row'])}: patient {pid} has more than one visit at "
                    f"{time_col} = {grp['time'].iloc[0]}; keep one visit per time."
                )

        extra_inj_cols = [c for c in inj.columns if c not in (patient_col, time_col, cycle_col)]
        injd = pd.DataFrame(
            {"patient": i_ids.to_numpy(), "time": inj[time_col].to_numpy(),
             "_t": _to_months(i_time, i_kind or v_kind), "_row": inj.index}
        )
        for c in extra_inj_cols:
            injd[c] = inj[c].to_numpy()
        visit_patients = set(vis["patient"])

        # patients table
        covariates: list[str] = []
        unused_patients: list[str] = []
        pat_cov = pd.DataFrame(index=pd.Index([], name="patient"))
        if patients is not None:
            pt_tab = _Table(patients.copy(), pname, row_word)
            if _require_columns(pt_tab, [patient_col], problems, "One row per patient."):
                pat_cov, covariates = _check_patients(pt_tab, patient_col, problems)
                known = set(pat_cov.index)
                unknown_i = injd.loc[~injd["patient"].isin(known)]
                if len(unknown_i):
                    problems.add(
                        f"{it.where(unknown_i['_row'])}: unknown patient id(s) "
                        f"{_rows(pd.unique(unknown_i['patient']))} (not in {pname})."
                    )
                unknown_v = vis.loc[~vis["patient"].isin(known)]
                if len(unknown_v):
                    problems.add(
                        f"{vt.where(unknown_v['_row'])}: unknown patient id(s) "
                        f"{_rows(pd.unique(unknown_v['patient']))} (not in {pname})."
                    )
                unvisited = sorted(known - visit_patients)
                if unvisited:
                    unused_patients = unvisited
        never = injd.loc[~injd["patient"].isin(visit_patients)]
        if len(never):
            problems.add(
                f"{it.where(never['_row'])}: patient(s) {_rows(pd.unique(never['patient']))} "
                f"were injected but have no visit in {vname}; every injected patient needs visits."
            )

        # same time twice
        dup_i = injd.duplicated(["patient", "_t"], keep=False)
        if dup_i.any():
            for pid, grp in injd[dup_i].groupby("patient", sort=True):
                problems.add(
                    f"{it.where(grp['_row'])}: patient {pid} has two injections at "
                    f"{time_col} = {grp['time'].iloc[0]}; each injection needs its own time."
                )
        injd = injd.sort_values(["patient", "_t"], kind="stable")
        injd["cycle"] = injd.groupby("patient").cumcount() + 1
        if cycle_col in inj.columns:
            _check_cycles(it, inj, injd, cycle_col, problems)
        problems.raise_if_any()

        # ---- months since first injection
        first = injd.groupby("patient")["_t"].min()
        last_visit = vis.groupby("patient")["_t"].max()
        origin = last_visit.copy()
        origin.loc[first.index] = first
        vis["month"] = vis["_t"] - vis["patient"].map(origin)
        injd["month"] = injd["_t"] - injd["patient"].map(origin)

        vis = vis.sort_values(["patient", "month"], kind="stable").reset_index(drop=True)
        injd = injd.sort_values(["patient", "cycle"], kind="stable").reset_index(drop=True)

        ids = sorted(visit_patients)
        n_inj = injd.groupby("patient").size().reindex(ids, fill_value=0)
        n_vis = vis.groupby("patient").size().reindex(ids, fill_value=0)
        n_run = vis[vis["month"] <= 0].groupby("patient").size().reindex(ids, fill_value=0)
        pat = pd.DataFrame(
            {"treated": n_inj > 0, "n_injections": n_inj, "n_visits": n_vis,
             "n_runin_visits": n_run},
            index=pd.Index(ids, name="patient"),
        )
        if covariates:
            pat = pat.join(pat_cov[covariates])
        pat[ARM_COLUMN] = (pat_cov[ARM_COLUMN].reindex(pat.index).fillna("treated")
                           if ARM_COLUMN in pat_cov else "treated")

        notes: list[str] = []
        dropped = pd.DataFrame(dropped_rows, columns=["table", "row", "patient", "reason"])
        if len(dropped):
            msg = (f"{len(dropped)} visit(s) dropped for a missing {spec.label}: "
                   f"{vt.where(dropped['row'])} (see TrialData.dropped).")
            warnings.warn(msg, DataWarning, skip_file_prefixes=_PACKAGE_DIR)
            notes.append(msg)
        if unused_patients:
            msg = (f"patient(s) {_rows(unused_patients)} of {pname} have no visit and were left "
                   "out of the analysis.")
            warnings.warn(msg, DataWarning, skip_file_prefixes=_PACKAGE_DIR)
            notes.append(msg)
        untreated = pat.index[~pat["treated"]].tolist()
        if untreated:
            notes.append(
                f"untreated (never injected, kept for the pre-treatment slope; outside every "
                f"responder count): {_rows(untreated)}"
            )
        few = pat.index[pat["treated"] & (pat["n_runin_visits"] < 2)].tolist()
        if few:
            msg = (f"patient(s) {_rows(few)} have fewer than 2 run-in visits (at or before the "
                   "first injection): their pre-treatment slope, and so their slowing, comes "
                   "mostly from the population.")
            warnings.warn(msg, DataWarning, skip_file_prefixes=_PACKAGE_DIR)
            notes.append(msg)

        data = cls(
            visits=vis.drop(columns=["_t", "_row"]),
            injections=injd.drop(columns=["_t", "_row"])[
                ["patient", "time", "month", "cycle", *extra_inj_cols]
            ],
            patients=pat,
            outcome=outcome,
            time_kind=v_kind or "months",
            dropped=dropped,
            covariates=covariates,
            notes=notes,
        )
        unobserved = data.unobserved_cycles()
        if unobserved:
            cells = ", ".join(f"{p} cycle {k}" for p, k in unobserved[:8])
            more = f" and {len(unobserved) - 8} more" if len(unobserved) > 8 else ""
            msg = (f"no visit during {cells}{more}: the slowing of such a cycle comes from the "
                   "hierarchy alone and it stays out of responder counts.")
            warnings.warn(msg, DataWarning, skip_file_prefixes=_PACKAGE_DIR)
            data.notes.append(msg)
        return data

    @classmethod
    def from_csv(
        cls,
        visits_path: str | Path,
        injections_path: str | Path,
        patients_path: str | Path | None = None,
        **kwargs,
    ) -> TrialData:
        """Read and validate trial tables from CSV files.

        Parameters
        ----------
        visits_path, injections_path : str or Path
            CSV files of visits and injections (see :meth:`from_frames` for columns).
        patients_path : str or Path, optional
            CSV file of per-patient covariates.
        **kwargs
            Passed to :meth:`from_frames` (``outcome``, ``patient_col``, ``time_col``, ...).

        Returns
        -------
        TrialData
            Error messages point at CSV line numbers (the header is line 1).
        """
        def read(path):
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            try:
                frame = pd.read_csv(path)
            except pd.errors.EmptyDataError:
                raise DataValidationError(
                    f"{path.name}: the file is empty (no header line, no rows); "
                    f"see examples/templates/ for the expected layout."
                ) from None
            except pd.errors.ParserError as err:
                raise DataValidationError(f"{path.name}: not a readable CSV file ({err}).") \
                    from None
            lines = _record_lines(path)
            if len(lines) == len(frame):
                frame.index = pd.Index(lines)
            else:  # a layout we cannot follow: count rows from line 2
                frame.index = pd.RangeIndex(2, len(frame) + 2)
            return frame

        inj = read(injections_path)
        if inj.empty:  # a file meant to list injections; an untreated cohort needs none
            raise DataValidationError(
                f"{Path(injections_path).name}: the table has a header but no rows (no "
                "injections). For untreated patients only, use TrialData.from_frames(visits, "
                "an empty injections frame) or NaturalHistory.from_cohort(visits)."
            )
        pat = read(patients_path) if patients_path is not None else None
        names = (
            Path(visits_path).name,
            Path(injections_path).name,
            Path(patients_path).name if patients_path is not None else "patients",
            "line",
        )
        return cls.from_frames(read(visits_path), inj, pat, _names=names,
                               **kwargs)

    # ------------------------------------------------------------------ views
    @property
    def patient_ids(self) -> list[str]:
        """Patient ids, sorted; the order of the ``patient`` dimension everywhere."""
        return self.patients.index.tolist()

    @property
    def n_cycles(self) -> int:
        """Largest number of injections any patient received."""
        return int(self.patients["n_injections"].max()) if len(self.patients) else 0

    @property
    def spec(self) -> OutcomeSpec:
        """The outcome's scale (label, unit, valid range, censoring bounds)."""
        return outcome_spec(self.outcome)

    def unobserved_cycles(self) -> list[tuple[str, int]]:
        """(patient, cycle) pairs with no visit after the injection and before the next one."""
        inj = self.injections[["patient", "cycle", "month"]].copy()
        inj["next"] = inj.groupby("patient")["month"].shift(-1).fillna(np.inf)
        pairs = inj.merge(self.visits[["patient", "month"]].rename(columns={"month": "t"}),
                          on="patient", how="left")
        pairs["hit"] = (pairs["t"] > pairs["month"]) & (pairs["t"] <= pairs["next"])
        hit = pairs.groupby(["patient", "cycle"], sort=True)["hit"].any()
        return [(p, int(k)) for (p, k), h in hit.items() if not h]

    def overview(self) -> dict[str, float]:
        """Counts that describe the trial: patients, visits, injections, run-in length (months)."""
        treated = self.patients["treated"]
        arms = self.patients["arm"] if "arm" in self.patients else pd.Series(
            "treated", index=self.patients.index)
        runin = -self.visits[self.visits["patient"].isin(self.patients.index[treated])].groupby(
            "patient"
        )["month"].min()
        return {
            "patients": int(len(self.patients)),
            "treated": int(treated.sum()),
            "untreated": int((~treated).sum()),
            **{("treated_arm" if a == "treated" else a): int((arms == a).sum()) for a in ARMS},
            "visits": int(len(self.visits)),
            "injections": int(len(self.injections)),
            "max_cycles": self.n_cycles,
            "mean_runin_months": float(runin.mean()) if len(runin) else float("nan"),
        }


def _record_lines(path: Path) -> list[int]:
    """Line number (1-based) on which each data record of a CSV file starts.

    Blank lines, which pandas skips, are skipped here too, so the numbers stay those of the file
    even when records are separated by blank lines or span several lines (quoted newlines).
    """
    starts: list[int] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        prev = 0
        for rec in reader:
            if rec and not (len(rec) == 1 and not rec[0].strip()):
                starts.append(prev + 1)
            prev = reader.line_num
    return starts[1:]  # the first record is the header


def _to_months(t: pd.Series, kind: str | None) -> np.ndarray:
    if kind == "date":
        t = pd.to_datetime(t)
        if getattr(t.dt, "tz", None) is not None:  # time-zone aware: compare in UTC
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        base = pd.Timestamp("2000-01-01")
        return ((t - base) / pd.Timedelta(days=1)).to_numpy(float) / DAYS_PER_MONTH
    return t.to_numpy(dtype=float)


def _check_items(tab: _Table, items: list[str], problems: _Problems) -> pd.DataFrame:
    vals = pd.DataFrame({c: pd.to_numeric(tab.frame[c], errors="coerce") for c in items})
    for c in items:
        raw = tab.frame[c]
        nonnum = vals[c].isna() & raw.notna()
        if nonnum.any():
            problems.add(f"{tab.where(tab.frame.index[nonnum])}: item '{c}' is not a number.")
        bad = vals[c].notna() & ~vals[c].isin([0, 1, 2, 3, 4])
        if bad.any():
            ex = ", ".join(f"{x:g}" for x in vals.loc[bad, c].head(3))
            problems.add(
                f"{tab.where(tab.frame.index[bad])}: ALSFRS-R item '{c}' must be 0, 1, 2, 3 or 4;"
                f" found {ex}."
            )
    return vals


def _check_cycles(
    it: _Table, inj: pd.DataFrame, injd: pd.DataFrame, cycle_col: str, problems: _Problems
) -> None:
    given = pd.to_numeric(inj[cycle_col], errors="coerce")
    bad = given.isna() | (given != np.round(given)) | (given < 1)
    if bad.any():
        problems.add(
            f"{it.where(inj.index[bad])}: column '{cycle_col}' must be a whole number >= 1."
        )
        return
    by_row = pd.Series(given.to_numpy(int), index=inj.index)
    for pid, grp in injd.groupby("patient", sort=True):
        stated = by_row.loc[grp["_row"]].to_numpy()
        if not np.array_equal(stated, grp["cycle"].to_numpy()):
            problems.add(
                f"{it.where(grp['_row'])}: patient {pid}'s cycle numbers {stated.tolist()} "
                f"contradict the time order of the injections (expected "
                f"{grp['cycle'].tolist()}: cycles are numbered 1, 2, ... by injection time)."
            )


def _check_patients(
    tab: _Table, patient_col: str, problems: _Problems
) -> tuple[pd.DataFrame, list[str]]:
    p = tab.frame
    ids = _patient_ids(tab, patient_col, problems)
    dup = ids.duplicated(keep=False) & ids.notna()
    if dup.any():
        problems.add(f"{tab.where(p.index[dup])}: patient id(s) {_rows(pd.unique(ids[dup]))} "
                     "appear more than once; give one row per patient.")
    out = pd.DataFrame(index=pd.Index(ids, name="patient"))
    covs = []
    if ARM_COLUMN in p.columns:
        out[ARM_COLUMN] = _check_arms(tab, ids, problems).to_numpy()
    for c in p.columns:
        if c in (patient_col, ARM_COLUMN):
            continue
        col = p[c]
        if pd.api.types.is_bool_dtype(col):
            num = col.astype(float)
        elif pd.api.types.is_numeric_dtype(col):
            num = col.astype(float)
        else:
            num = pd.to_numeric(col, errors="coerce")
            if num.isna().sum() > col.isna().sum():
                levels = sorted(pd.unique(col.dropna().astype(str)))
                if len(levels) == 2:
                    num = (col.astype(str) == levels[1]).astype(float).where(col.notna())
                    c_name = f"{c}[{levels[1]}]"
                    out[c_name] = num.to_numpy()
                    covs.append(c_name)
                    _missing_cov(tab, c, num, ids, problems)
                    continue
                problems.add(
                    f"{tab.name} column '{c}': covariates must be numeric or have two levels "
                    f"(e.g. sex M/F); found {len(levels)} levels {levels[:5]}."
                )
                continue
        _missing_cov(tab, c, num, ids, problems)
        out[c] = num.to_numpy()
        covs.append(c)
    out = out[~out.index.isna()]
    return out, covs


def _check_arms(tab: _Table, ids: pd.Series, problems: _Problems) -> pd.Series:
    """The ``arm`` column, normalised to "treated", "control" or "external"."""
    raw = tab.frame[ARM_COLUMN]
    norm = raw.astype(str).str.strip().str.lower().map(_ARM_ALIASES)
    bad = norm.isna()
    if bad.any():
        vals = ", ".join(repr(v) for v in pd.unique(raw[bad])[:5])
        problems.add(
            f"{tab.where(tab.frame.index[bad])}: column '{ARM_COLUMN}' has {vals} for patient(s) "
            f"{_rows(ids[bad])}; use 'treated', 'control' (placebo, sham injections) or "
            "'external' (an untreated reference cohort)."
        )
    return norm.fillna("treated")


def _missing_cov(tab, c, num, ids, problems) -> None:
    miss = num.isna() | ~np.isfinite(num.fillna(0))
    if miss.any():
        problems.add(
            f"{tab.where(tab.frame.index[miss])}: covariate '{c}' is missing or not finite for "
            f"patient(s) {_rows(ids[miss])}."
        )
