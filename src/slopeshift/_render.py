"""Render the report's figures to PNG, in this process or in this one and forked helpers.

Drawing a figure is Matplotlib work in one Python thread: the report's eight figures take about
5 s on one core for the bundled trial, most of it text layout. With ``workers=2`` a forked
copy of this process draws figures from the end of the list while this process draws from
the start, and each PNG comes back over a pipe: the same bytes as a serial rendering (the
child has the same state and the same fit), in about half the time.

Why fork is safe enough here: the child only runs NumPy, xarray and Matplotlib on data it
already holds; the other native threads of a process that has sampled (OpenBLAS's pool, which
shuts down around a fork and restarts on demand, and nutpie's finished sampler) are idle when
the report runs, so none holds a lock the child needs. The child's warnings are recorded and
re-issued here, nothing in it prints, and it leaves with ``os._exit``. Whatever the child does
not deliver (an error, a crash, or no answer in time) is drawn here instead, so the report is
complete and identical whatever happens to the helper. Forking is used only on Linux.
"""

from __future__ import annotations

import base64
import io
import multiprocessing as mp
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["available_workers", "png", "render"]

# the helper may take this much longer than this process took for its own share (and at
# least _MIN_WAIT seconds) before its figures are drawn here instead
_WAIT_FACTOR = 4.0
_MIN_WAIT = 60.0


def png(fig: Figure, dpi: int) -> str:
    """The figure as a base64 PNG string; closes the figure."""
    buf = io.BytesIO()
    try:
        # a figure laid out by Matplotlib's layout engine is already tight; bbox_inches="tight"
        # would draw it once more only to measure it (a second or more for the trajectories)
        tight = None if fig.get_layout_engine() is not None else "tight"
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches=tight)
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def available_workers() -> int:
    """How many processes can usefully draw figures: the CPUs this process may use (at most 2)
    on Linux, else 1."""
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(2, len(os.sched_getaffinity(0))))


def render(makers: Sequence[Callable[[], Figure]], dpi: int, workers: int = 1) -> list[str]:
    """Each maker's figure as a base64 PNG string, in the makers' order.

    Parameters
    ----------
    makers : sequence of callables
        Each returns a new Matplotlib figure.
    dpi : int
        Resolution (dots per inch).
    workers : int, default 1
        Processes that draw: 1 draws them all here; 2 (Linux only) also forks one helper that
        draws from the end of the list (more than 2 counts as 2). The result is the same
        either way.

    Returns
    -------
    list of str
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}.")
    # a daemonic process (a worker of a multiprocessing pool) may not start children
    if (workers == 1 or len(makers) < 2 or not sys.platform.startswith("linux")
            or mp.current_process().daemon):
        return [png(make(), dpi) for make in makers]
    return _render_forked(makers, dpi)


def _render_forked(makers: Sequence[Callable[[], Figure]], dpi: int) -> list[str]:
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    front = ctx.RawValue("i", 0)  # next figure this process draws
    back = ctx.RawValue("i", len(makers) - 1)  # next figure the helper draws
    receive, send = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():
        # see the module docstring for why this fork is safe; the warning would only alarm
        warnings.filterwarnings("ignore", message=r".*multi-threaded, use of fork\(\).*",
                                category=DeprecationWarning)
        helper = ctx.Process(target=_helper, args=(makers, dpi, lock, front, back, send),
                             daemon=True)
        helper.start()
    send.close()
    out: list[str | None] = [None] * len(makers)
    caught: list[tuple[str, type[Warning]]] = []
    # a PNG is larger than a pipe's buffer: a thread takes the helper's figures as they come,
    # or the helper would wait for this process to finish its own share before it went on
    reader = threading.Thread(target=_collect, args=(receive, out, caught), daemon=True)
    reader.start()
    start = time.perf_counter()
    try:
        while True:
            with lock:
                i = front.value
                if i > back.value:
                    break
                front.value = i + 1
            out[i] = png(makers[i](), dpi)
        reader.join(max(_MIN_WAIT, _WAIT_FACTOR * (time.perf_counter() - start)))
    finally:
        if helper.is_alive():
            helper.terminate()
        helper.join()
        reader.join()
        receive.close()
    for message, category in caught:
        warnings.warn(message, category, stacklevel=3)
    # whatever the helper did not deliver is drawn here (an error re-raises here, as in a
    # serial rendering)
    return [data if data is not None else png(makers[i](), dpi) for i, data in enumerate(out)]


def _collect(receive, out: list[str | None], caught: list) -> None:
    """Take the helper's figures and warnings until it is done or gone."""
    while True:
        try:
            kind, i, payload, warned = receive.recv()
        except (EOFError, OSError):  # the helper is gone (or was stopped)
            return
        caught.extend(warned)
        if kind == "done":
            return
        if kind == "png":
            out[i] = payload
        # "error": left as None, drawn by the parent


def _helper(makers, dpi, lock, front, back, send) -> None:  # pragma: no cover (child)
    code = 0
    try:
        while True:
            with lock:
                i = back.value
                if i < front.value:
                    break
                back.value = i - 1
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    result = ("png", i, png(makers[i](), dpi))
                except Exception:  # noqa: BLE001 - reported, and drawn by the parent
                    result = ("error", i, traceback.format_exc())
            send.send((*result, [(str(w.message), w.category) for w in caught]))
        send.send(("done", -1, None, []))
    except BaseException:  # noqa: BLE001 - the parent draws whatever is missing
        code = 1
    finally:
        send.close()
        os._exit(code)
