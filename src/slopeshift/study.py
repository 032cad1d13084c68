"""Studies of many fits: run one task over many specifications, in parallel, resumably.

Calibration, trial design and null checks run the same model hundreds of times. A study is a
list of *specs* (JSON-serialisable dicts, one per task) and a *task*, a module-level function
``task(spec, seed) -> dict`` that simulates, fits and returns a flat dict of scalars.
:func:`run_study` runs ``task(spec_i, task_seed(seed, i))`` for every spec i, on a local process
pool, any :class:`concurrent.futures.Executor` or a Dask cluster, and stores each finished
task's record as it arrives, so that an interrupted study resumes where it stopped.
:func:`load_study` reads the records back as one table. The jobs built on it:
:class:`TrialDesign` and :func:`power` (operating characteristics of a design, by
simulation) and :func:`null_check` (false positives on untreated patients given sham
injections); see :mod:`slopeshift.study_jobs`.

A task's seed depends only on the study seed and the task's index (:func:`task_seed`), so the
records are identical whatever the number or kind of workers, and whichever tasks were already
done when a study resumed.

The store (``out_dir``)::

    study.json                 name, seed, n_tasks, specs_hash, version, created
    tasks/task-000000.parquet  one record per finished task (one row)
    tasks/task-000001.parquet
    ...

A record is ``{"task": i, "seed": s, "spec_<key>": ..., **result}``; a task that raised is
recorded as ``{"task": i, "seed": s, "spec_<key>": ..., "error": "<type>: <message>"}`` and is
run again when the study is run again.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import distributed

__all__ = [
    "Calibration", "NullCheck", "TrialDesign", "calibrate", "design_grid", "expand_designs",
    "load_study", "null_check", "power", "run_study", "task_seed", "true_rho_bar",
]

_STUDY_FILE = "study.json"
_TASKS_DIR = "tasks"
_RESERVED = ("task", "seed", "error")

#: A task, and the jobs of a run: (index, spec, seed) of each task to run.
_Task = Callable[[dict, int], dict]
_Jobs = Sequence[tuple[int, dict, int]]


def task_seed(study_seed: int, index: int) -> int:
    """The seed of one task of a study, from the study seed and the task's index only.

    Parameters
    ----------
    study_seed : int
        The study's seed (non-negative).
    index : int
        The task's position in the specs (0-based).

    Returns
    -------
    int
        A 32-bit seed (0 to 2**32 - 1), the first word of
        ``np.random.SeedSequence([study_seed, index])``: independent streams for different
        indices, and the same seed wherever and in whatever order the task runs.
    """
    state = np.random.SeedSequence([int(study_seed), int(index)]).generate_state(1, np.uint32)
    return int(state[0])


def _specs_hash(specs: Sequence[dict]) -> str:
    """A stable hash of the specs (their JSON, keys sorted)."""
    text = json.dumps(list(specs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten_spec(spec: Mapping, prefix: str = "spec_") -> dict[str, Any]:
    """Spec columns: nested dicts joined with ``.``, lists and tuples as JSON text."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten_spec(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def _scalar(key: str, value: Any) -> Any:
    """A result value as a plain Python scalar (numbers, strings, bools, None)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"the task returned {type(value).__name__} for {key!r}; a task returns a "
                    "flat dict of scalars (numbers, strings, bools)")


def _run_one(task: _Task, spec: dict, seed: int, index: int) -> dict:
    """Run one task and build its record; an exception becomes the record's ``error``."""
    record = {"task": index, "seed": seed, **_flatten_spec(spec)}
    try:
        result = task(spec, seed)
        if not isinstance(result, Mapping):
            raise TypeError(f"the task returned {type(result).__name__}, not a dict")
        values = {}
        for key, value in result.items():
            if key in _RESERVED or str(key).startswith("spec_"):
                raise ValueError(f"the task returned the reserved key {key!r} (reserved: "
                                 f"{', '.join(_RESERVED)} and names starting with 'spec_')")
            values[str(key)] = _scalar(str(key), value)
    except Exception as exc:  # any failure of one task is recorded, not raised
        return record | {"error": _describe(exc)}
    return record | values


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _task_path(tasks_dir: Path, index: int) -> Path:
    return tasks_dir / f"task-{index:06d}.parquet"


def _task_files(tasks_dir: Path) -> dict[int, Path]:
    """The finished task files, by task index (temporary files are not finished)."""
    files = {}
    for path in tasks_dir.glob("task-*.parquet"):
        try:
            files[int(path.stem.removeprefix("task-"))] = path
        except ValueError:
            continue
    return files


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_record(tasks_dir: Path, record: dict) -> None:
    frame = pd.DataFrame([record])
    _write_atomic(_task_path(tasks_dir, record["task"]),
                  lambda tmp: frame.to_parquet(tmp, index=False))


def _open_store(out_dir: Path, name: str, seed: int, specs: Sequence[dict]) -> Path:
    """Create the store, or check that the one there is this study; returns the tasks folder."""
    header = {"name": name, "seed": int(seed), "n_tasks": len(specs),
              "specs_hash": _specs_hash(specs), "version": version("slopeshift"),
              "created": datetime.now(UTC).isoformat(timespec="seconds")}
    study_file = out_dir / _STUDY_FILE
    tasks_dir = out_dir / _TASKS_DIR
    if study_file.exists():
        old = json.loads(study_file.read_text())
        if old.get("seed") != header["seed"]:
            raise ValueError(
                f"{out_dir} holds a study with seed {old.get('seed')}, not {seed}: resume it "
                "with the same seed and specs, or use another out_dir.")
        if old.get("specs_hash") != header["specs_hash"]:
            raise ValueError(
                f"{out_dir} holds a study with different specs ({old.get('n_tasks')} tasks, "
                f"specs hash {old.get('specs_hash')}; these: {len(specs)} tasks, hash "
                f"{header['specs_hash']}): resume it with the same seed and specs, or use "
                "another out_dir.")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(study_file, lambda tmp: tmp.write_text(json.dumps(header, indent=2) + "\n"))
    tasks_dir.mkdir(exist_ok=True)
    for stale in tasks_dir.glob(".*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    return tasks_dir


def _is_done(path: Path) -> bool:
    """A task file records a finished task unless it carries an ``error`` column."""
    return "error" not in pq.read_schema(path).names


class _Progress:
    """Tasks done / total and the time left, on stderr (tqdm if installed)."""

    def __init__(self, name: str, total: int, done: int, enabled: bool):
        self.enabled, self.name, self.total, self.done = enabled, name, total, done
        self.start_done, self.failed, self.start = done, 0, time.monotonic()
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._line()
            else:
                self.bar = tqdm(total=total, initial=done, desc=name, unit="task",
                                file=sys.stderr, dynamic_ncols=True)

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if failed:
                self.bar.set_postfix(failed=self.failed)
        else:
            self._line()

    def _line(self) -> None:
        ran = self.done - self.start_done
        elapsed = time.monotonic() - self.start
        left = "?" if ran == 0 else _duration(elapsed / ran * (self.total - self.done))
        failed = f", {self.failed} failed" if self.failed else ""
        sys.stderr.write(f"\r{self.name}: {self.done}/{self.total} tasks{failed}, "
                         f"{_duration(elapsed)} elapsed, ~{left} left ")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _in_process(task: _Task, jobs: _Jobs) -> Iterator[dict]:
    for index, spec, seed in jobs:
        yield _run_one(task, spec, seed, index)


def _on_executor(task: _Task, jobs: _Jobs, executor: concurrent.futures.Executor) -> Iterator[dict]:
    futures = {executor.submit(_run_one, task, spec, seed, index): (index, spec, seed)
               for index, spec, seed in jobs}
    try:
        for future in concurrent.futures.as_completed(futures):
            yield _result_or_error(future, *futures[future])
    finally:
        for future in futures:
            future.cancel()


def _on_dask(task: _Task, jobs: _Jobs, client: distributed.Client) -> Iterator[dict]:
    from distributed import as_completed

    futures = {client.submit(_run_one, task, spec, seed, index, pure=False): (index, spec, seed)
               for index, spec, seed in jobs}
    try:
        for future in as_completed(list(futures)):
            yield _result_or_error(future, *futures[future])
    finally:
        client.cancel(list(futures))


def _result_or_error(future: Any, index: int, spec: dict, seed: int) -> dict:
    """The record a future returned; a failure of the executor itself (a worker that died,
    a result that could not be sent back) is recorded as the task's error."""
    try:
        return future.result()
    except Exception as exc:  # the executor failed the task (a worker died): recorded
        return {"task": index, "seed": seed, **_flatten_spec(spec), "error": _describe(exc)}


def _check_scheduler(scheduler: str | distributed.Client) -> None:
    """Dask is installed and ``scheduler`` is a Client or an address."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError("run_study(scheduler=...) needs Dask: pip install 'slopeshift[dask]'"
                          ) from exc
    if not isinstance(scheduler, str | Client):
        raise TypeError("scheduler must be a dask.distributed Client or a scheduler address such "
                        f"as 'tcp://10.0.0.1:8786', not {type(scheduler).__name__}")


def _dask_client(scheduler: str | distributed.Client) -> tuple[distributed.Client, bool]:
    """The client to submit to, and whether it was opened here (and is to be closed)."""
    from distributed import Client

    return (Client(scheduler), True) if isinstance(scheduler, str) else (scheduler, False)


def run_study(
    task: Callable[[dict, int], dict],
    specs: Sequence[dict],
    out_dir: str | Path,
    *,
    seed: int,
    workers: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    scheduler: str | distributed.Client | None = None,
    progress: bool = True,
    name: str = "study",
) -> pd.DataFrame:
    """Run ``task(spec, task_seed(seed, i))`` for every spec i, storing each record in ``out_dir``.

    Parameters
    ----------
    task : callable
        ``task(spec: dict, seed: int) -> dict``: one simulation, fit, or whatever the study
        repeats, returning a flat dict of scalars (numbers, strings, bools, None; NumPy scalars
        are converted). It must be picklable, i.e. a function defined at the top level of an
        importable module (not a lambda, a nested function or a notebook cell), so that worker
        processes can import it. It must not return the keys ``task``, ``seed``, ``error`` or
        keys starting with ``spec_``. Seed every random generator inside it from ``seed``.
    specs : sequence of dict
        One JSON-serialisable dict per task (e.g. ``{"n_patients": 20, "rho": 0.25}``). Each is
        stored in the record as ``spec_<key>`` columns (nested dicts as ``spec_<key>.<inner>``,
        lists as JSON text).
    out_dir : str or Path
        The study's store: ``study.json`` and ``tasks/task-000123.parquet``, one file per
        finished task. If it already holds this study (same seed and specs), the study
        resumes: tasks whose record is there are not run again, and failed tasks are retried.
    seed : int
        The study seed; task i runs with :func:`task_seed` ``(seed, i)``.
    workers : int, optional
        Processes of the local pool (default: half the CPUs, at least 1). ``workers=1`` runs
        the tasks one after another in this process, without a pool (for debugging).
    executor : concurrent.futures.Executor, optional
        Run the tasks on this executor instead (it is not shut down).
    scheduler : str or distributed.Client, optional
        Run the tasks on a Dask cluster: a ``distributed.Client``, or a scheduler address such
        as ``"tcp://10.0.0.1:8786"`` (a client is opened and closed). Needs the ``dask`` extra
        (``pip install 'slopeshift[dask]'``). Records come back to this process, which writes
        them, so the workers need not see ``out_dir``.
    progress : bool, default True
        Show tasks done / total and the estimated time left on stderr (a tqdm bar if tqdm is
        installed, else one line).
    name : str, default "study"
        The study's name, stored in ``study.json`` and shown by the progress line.

    Returns
    -------
    pandas.DataFrame
        :func:`load_study` ``(out_dir)``: one row per task, sorted by ``task``.

    Raises
    ------
    TypeError
        If ``task`` cannot be pickled or a spec is not JSON-serialisable.
    ValueError
        If ``out_dir`` holds another study (a different seed or specs), or if more than one
        of ``workers``, ``executor`` and ``scheduler`` is given.
    ImportError
        If ``scheduler`` is given and Dask is not installed.

    Warns
    -----
    RuntimeWarning
        Once at the end, if tasks failed: how many, and the first error. Their records carry
        the error; running the study again retries them.

    Notes
    -----
    Where a task runs does not change its record: its seed depends only on ``seed`` and its
    index, and the record is built from the spec, the seed and the task's result alone. A
    local pool starts its processes with ``spawn`` (each imports slopeshift once, a few
    seconds), which is safe with the threads of the samplers. Each record is written to a
    temporary file in ``tasks/`` and renamed into place, so a study killed at any moment
    leaves only whole records, and the next run resumes from them.
    """
    specs = list(specs)
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise TypeError(f"spec {index} is a {type(spec).__name__}; each spec is a dict")
        try:
            json.dumps(spec)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"spec {index} is not JSON-serialisable ({exc}); specs hold "
                            "numbers, strings, bools, lists and dicts") from exc
    try:
        pickle.dumps(task)
    except Exception as exc:
        raise TypeError(
            f"task {getattr(task, '__qualname__', task)!r} cannot be pickled ({exc}); define it "
            "as a function at the top level of an importable module (not a lambda, a nested "
            "function or a notebook cell), so that worker processes can import it") from exc
    given = [label for label, value in (("workers", workers), ("executor", executor),
                                        ("scheduler", scheduler)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of workers, executor and scheduler, not "
                         f"{' and '.join(given)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if scheduler is not None:
        _check_scheduler(scheduler)

    out_dir = Path(out_dir)
    tasks_dir = _open_store(out_dir, name, seed, specs)
    files = _task_files(tasks_dir)
    done = {index for index, path in files.items() if index < len(specs) and _is_done(path)}
    jobs = [(index, spec, task_seed(seed, index))
            for index, spec in enumerate(specs) if index not in done]

    failures: list[tuple[int, str]] = []
    bar = _Progress(name, len(specs), len(done), progress)
    client, own_client, pool, records = None, False, None, None
    try:
        if not jobs:
            records = _in_process(task, jobs)
        elif executor is not None:
            records = _on_executor(task, jobs, executor)
        elif scheduler is not None:
            client, own_client = _dask_client(scheduler)
            records = _on_dask(task, jobs, client)
        else:
            n = min(workers or max(1, (os.cpu_count() or 2) // 2), len(jobs))
            if n == 1:
                records = _in_process(task, jobs)
            else:
                pool = concurrent.futures.ProcessPoolExecutor(
                    n, mp_context=multiprocessing.get_context("spawn"))
                records = _on_executor(task, jobs, pool)
        for record in records:
            _save_record(tasks_dir, record)
            if "error" in record:
                failures.append((record["task"], record["error"]))
            bar.update(failed="error" in record)
    finally:
        bar.close()
        if records is not None:
            records.close()  # cancels the tasks not started, if the loop was interrupted
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if own_client:
            client.close()

    if failures:
        failures.sort()
        warnings.warn(f"{len(failures)} of {len(jobs)} tasks failed; the first (task "
                      f"{failures[0][0]}): {failures[0][1]}. Their records carry the error; run "
                      "the study again to retry them.", RuntimeWarning, stacklevel=2)
    return load_study(out_dir)


def load_study(out_dir: str | Path) -> pd.DataFrame:
    """Every finished task's record of the study stored in ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        A study's store, as written by :func:`run_study` (it may be still running or have
        been interrupted: the records finished so far are read).

    Returns
    -------
    pandas.DataFrame
        One row per finished task, sorted by ``task``: ``task``, ``seed``, the ``spec_``
        columns, the task's results, and ``error`` (missing where the task succeeded) if any
        task failed. ``.attrs`` holds ``study.json``: ``name``, ``seed``, ``n_tasks``,
        ``specs_hash``, ``version`` (of slopeshift) and ``created`` (UTC, ISO 8601).

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no study (no ``study.json``).
    """
    out_dir = Path(out_dir)
    study_file = out_dir / _STUDY_FILE
    if not study_file.is_file():
        raise FileNotFoundError(f"no study in {out_dir} (no {_STUDY_FILE}); run_study(..., "
                                f"out_dir={str(out_dir)!r}) creates one")
    header = json.loads(study_file.read_text())
    files = _task_files(out_dir / _TASKS_DIR)
    frames = [pd.read_parquet(files[index]) for index in sorted(files)]
    if frames:
        table = pd.concat(frames, ignore_index=True).infer_objects()  # None beside numbers
        if "error" in table:
            table = table[[c for c in table.columns if c != "error"] + ["error"]]
    else:
        table = pd.DataFrame({"task": pd.Series(dtype="int64"), "seed": pd.Series(dtype="int64")})
    table.attrs = header
    return table


# the jobs built on the engine (trial design, null checks); imported last, they use run_study
from slopeshift.study_jobs import (  # noqa: E402
    Calibration,
    NullCheck,
    TrialDesign,
    calibrate,
    design_grid,
    expand_designs,
    null_check,
    power,
    true_rho_bar,
)


def __getattr__(name: str) -> Any:
    # slopeshift.plots.plot_operating_characteristics, importable from here too; imported on
    # first use so that study workers (which import this module) do not load matplotlib
    if name == "plot_operating_characteristics":
        from slopeshift.plots import plot_operating_characteristics

        return plot_operating_characteristics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
