"""The study engine: seeds, executors, the store, resuming and failures (slopeshift.study)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slopeshift.study import load_study, run_study, task_seed

HERE = Path(__file__).parent


# Tasks are module-level functions, so that worker processes can import them.
def cheap_task(spec: dict, seed: int) -> dict:
    """Draws numbers from a generator seeded by the task's seed."""
    rng = np.random.default_rng(seed)
    draws = rng.normal(spec["mu"], 1.0, size=spec["n"])
    return {"mean": draws.mean(), "max": np.max(draws), "n_pos": int((draws > 0).sum()),
            "label": f"mu={spec['mu']}", "big": bool(draws.mean() > spec["mu"])}


def logging_task(spec: dict, seed: int) -> dict:
    """Appends its index to the log file named in the spec, then returns a number."""
    with open(spec["log"], "a") as log:
        log.write(f"{spec['i']}\n")
    if spec.get("sleep"):
        time.sleep(spec["sleep"])
    return {"value": np.random.default_rng(seed).uniform()}


def flaky_task(spec: dict, seed: int) -> dict:
    """Fails for odd i until the flag file exists."""
    if spec["i"] % 2 and not Path(spec["flag"]).exists():
        raise RuntimeError(f"task {spec['i']} broke")
    return {"value": spec["i"] * 10}


def fit_task(spec: dict, seed: int) -> dict:
    """Simulate a small trial and fit it briefly: the population slowing."""
    from slopeshift import SlopeShiftModel, simulate_trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = simulate_trial(spec["n_patients"], n_untreated=1, random_seed=seed)
        fit = SlopeShiftModel(data).fit(draws=100, tune=150, chains=2, random_seed=seed,
                                        progressbar=False, check=False)
    rho_bar = fit.population().set_index("quantity").loc["rho_bar"]
    return {"rho_bar_mean": rho_bar["mean"], "rho_bar_p_gt_0": rho_bar["p_gt_0"],
            "rho_bar_ci_lo": rho_bar["ci_2.5"]}


def _specs(n: int = 6) -> list[dict]:
    return [{"mu": 0.5 * i - 1, "n": 5 + i, "design": {"arm": "a" if i % 2 else "b"}}
            for i in range(n)]


def _log_lines(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_task_seed_is_deterministic_and_differs_by_index():
    seeds = [task_seed(2024, i) for i in range(100)]
    assert seeds == [task_seed(2024, i) for i in range(100)]
    assert len(set(seeds)) == 100
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert task_seed(2025, 0) != task_seed(2024, 0)
    expected = np.random.SeedSequence([2024, 7]).generate_state(1, np.uint32)[0]
    assert task_seed(2024, 7) == int(expected)


def test_records_and_store(tmp_path):
    table = run_study(cheap_task, _specs(), tmp_path / "s", seed=1, workers=1, progress=False,
                      name="cheap")
    assert list(table["task"]) == list(range(6))
    assert list(table.columns[:2]) == ["task", "seed"]
    assert list(table["seed"]) == [task_seed(1, i) for i in range(6)]
    assert list(table["spec_mu"]) == [s["mu"] for s in _specs()]
    assert list(table["spec_design.arm"]) == ["b", "a", "b", "a", "b", "a"]
    assert {"mean", "max", "n_pos", "label", "big"} <= set(table.columns)
    assert "error" not in table
    # the records are the task's results for its seed
    assert table.loc[3, "mean"] == pytest.approx(cheap_task(_specs()[3], task_seed(1, 3))["mean"])
    header = json.loads((tmp_path / "s" / "study.json").read_text())
    assert {k: header[k] for k in ("name", "seed", "n_tasks")} == {"name": "cheap", "seed": 1,
                                                                    "n_tasks": 6}
    assert set(header) == {"name", "seed", "n_tasks", "specs_hash", "version", "created"}
    assert table.attrs == header
    files = sorted(p.name for p in (tmp_path / "s" / "tasks").iterdir())
    assert files == [f"task-{i:06d}.parquet" for i in range(6)]
    pd.testing.assert_frame_equal(load_study(tmp_path / "s"), table)


def test_pool_gives_the_records_of_one_process(tmp_path):
    specs = _specs()
    serial = run_study(cheap_task, specs, tmp_path / "serial", seed=3, workers=1, progress=False)
    pooled = run_study(cheap_task, specs, tmp_path / "pool", seed=3, workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, pooled)


def test_resume_runs_only_the_missing_tasks(tmp_path):
    out, log = tmp_path / "s", tmp_path / "calls.log"
    specs = [{"i": i, "log": str(log)} for i in range(8)]
    first = run_study(logging_task, specs, out, seed=5, workers=1, progress=False)
    assert sorted(_log_lines(log)) == list(range(8))
    for i in (1, 4, 6):  # an interrupted study: three records missing
        (out / "tasks" / f"task-{i:06d}.parquet").unlink()
    log.unlink()
    again = run_study(logging_task, specs, out, seed=5, workers=1, progress=False)
    assert sorted(_log_lines(log)) == [1, 4, 6]
    assert list(again["task"]) == list(range(8))
    pd.testing.assert_frame_equal(again, first)
    log.unlink()
    run_study(logging_task, specs, out, seed=5, workers=1, progress=False)  # all done
    assert not log.exists()


def test_killed_study_resumes_without_partial_files(tmp_path):
    out, log = tmp_path / "s", tmp_path / "calls.log"
    specs = [{"i": i, "log": str(log), "sleep": 0.6} for i in range(8)]
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from test_study import logging_task
        from slopeshift.study import run_study
        run_study(logging_task, {specs!r}, {str(out)!r}, seed=9, workers=1, progress=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    tasks = out / "tasks"
    deadline = time.monotonic() + 90
    try:
        while len(list(tasks.glob("task-*.parquet"))) < 3:
            assert child.poll() is None, "the study ended before it could be interrupted"
            assert time.monotonic() < deadline, "the study did not start in 90 s"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    finished = {int(p.stem[5:]) for p in tasks.glob("task-*.parquet")}
    assert 3 <= len(finished) < 8
    started = _log_lines(log)
    log.unlink()
    table = run_study(logging_task, specs, out, seed=9, workers=1, progress=False)
    rerun = _log_lines(log)
    assert sorted(rerun) == sorted(set(range(8)) - finished)  # each missing task once, no other
    assert set(started) | set(rerun) == set(range(8))
    assert list(table["task"]) == list(range(8))
    assert "error" not in table and table["value"].notna().all()
    assert sorted(p.name for p in tasks.iterdir()) == [f"task-{i:06d}.parquet" for i in range(8)]
    for i in range(8):
        assert len(pd.read_parquet(tasks / f"task-{i:06d}.parquet")) == 1


def test_existing_study_with_other_seed_or_specs(tmp_path):
    out = tmp_path / "s"
    run_study(cheap_task, _specs(3), out, seed=1, workers=1, progress=False)
    with pytest.raises(ValueError, match=r"seed 1, not 2.*another out_dir"):
        run_study(cheap_task, _specs(3), out, seed=2, workers=1, progress=False)
    with pytest.raises(ValueError, match=r"different specs \(3 tasks.*4 tasks.*another out_dir"):
        run_study(cheap_task, _specs(4), out, seed=1, workers=1, progress=False)
    changed = _specs(3)
    changed[1]["n"] = 99
    with pytest.raises(ValueError, match="different specs"):
        run_study(cheap_task, changed, out, seed=1, workers=1, progress=False)


def test_failed_tasks_are_recorded_and_retried(tmp_path):
    out, flag = tmp_path / "s", tmp_path / "fixed"
    specs = [{"i": i, "flag": str(flag)} for i in range(6)]
    with pytest.warns(RuntimeWarning, match=r"3 of 6 tasks failed.*task 1\): "
                                            r"RuntimeError: task 1 broke.*run the study again"):
        table = run_study(flaky_task, specs, out, seed=2, workers=1, progress=False)
    assert list(table["task"]) == list(range(6))
    assert table["error"].isna().tolist() == [True, False] * 3
    assert table.loc[3, "error"] == "RuntimeError: task 3 broke"
    assert table.columns[-1] == "error"
    assert table["value"].tolist()[::2] == [0, 20, 40]
    flag.touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = run_study(flaky_task, specs, out, seed=2, workers=1, progress=False)
    assert "error" not in table
    assert table["value"].tolist() == [0, 10, 20, 30, 40, 50]


def test_bad_results_are_recorded_as_errors(tmp_path):
    with pytest.warns(RuntimeWarning, match="2 of 2 tasks failed"):
        table = run_study(_returns_reserved_or_list, [{"k": "seed"}, {"k": "vec"}],
                          tmp_path / "s", seed=0, workers=1, progress=False)
    assert table.loc[0, "error"].startswith("ValueError: the task returned the reserved key 'seed'")
    assert table.loc[1, "error"].startswith("TypeError: the task returned list for 'vec'")


def _returns_reserved_or_list(spec: dict, seed: int) -> dict:
    return {spec["k"]: [1, 2]}


def test_load_study_without_a_study(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no study in .*empty.*study\.json"):
        load_study(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no study in"):
        load_study(tmp_path / "empty")


def test_unpicklable_task_and_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="cannot be pickled.*top level of an importable module"):
        run_study(lambda spec, seed: {}, [{}], tmp_path / "s", seed=0, progress=False)
    with pytest.raises(TypeError, match="spec 1 is not JSON-serialisable"):
        run_study(cheap_task, [{}, {"x": object()}], tmp_path / "s", seed=0, progress=False)
    with pytest.raises(ValueError, match="at most one of workers, executor and scheduler"):
        run_study(cheap_task, [{}], tmp_path / "s", seed=0, workers=2, scheduler="tcp://x:1")
    assert not (tmp_path / "s").exists()


def test_progress_line(tmp_path, capsys):
    run_study(cheap_task, _specs(3), tmp_path / "s", seed=1, workers=1, name="demo")
    err = capsys.readouterr().err
    assert "demo" in err and "3/3" in err
    run_study(cheap_task, _specs(3), tmp_path / "t", seed=1, workers=1, progress=False)
    assert capsys.readouterr().err == ""


def test_any_executor(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        threaded = run_study(cheap_task, _specs(), tmp_path / "t", seed=4, executor=pool,
                             progress=False)
    serial = run_study(cheap_task, _specs(), tmp_path / "s", seed=4, workers=1, progress=False)
    pd.testing.assert_frame_equal(threaded, serial)


def test_dask_scheduler_cheap_tasks(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            on_dask = run_study(cheap_task, _specs(), tmp_path / "d", seed=4, scheduler=client,
                                progress=False)
            assert client.status == "running"  # a client given is not closed
    serial = run_study(cheap_task, _specs(), tmp_path / "s", seed=4, workers=1, progress=False)
    pd.testing.assert_frame_equal(on_dask, serial)


def test_dask_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ImportError, match=r"pip install 'slopeshift\[dask\]'"):
        run_study(cheap_task, _specs(2), tmp_path / "s", seed=0, scheduler="tcp://x:1",
                  progress=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_dask_cluster_gives_the_records_of_a_process_pool(tmp_path):
    distributed = pytest.importorskip("distributed")
    specs = [{"n_patients": 12}] * 4
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            on_dask = run_study(fit_task, specs, tmp_path / "dask", seed=7, scheduler=client,
                                progress=False)
    pooled = run_study(fit_task, specs, tmp_path / "pool", seed=7, workers=2, progress=False)
    for where, table in (("dask", on_dask), ("pool", pooled)):
        errors = table["error"].dropna().tolist() if "error" in table else []
        assert not errors, f"tasks failed on the {where}: {errors}"
    assert on_dask["rho_bar_mean"].notna().all()
    pd.testing.assert_frame_equal(on_dask, pooled, check_exact=True)
