"""Compiled models, cached by structure: compile once, fit any data of the same shape.

Compiling a model for nutpie (PyTensor's graph rewrites, then Numba) takes about 13 s for the
bundled trial in a fresh process; sampling it takes about 1 s.
:class:`~slopeshift.SlopeShiftModel` builds its graph with every data array and every prior
parameter as a PyTensor *shared variable* (an input of the compiled function, not a constant
folded into it), so two models that differ only in their data or their prior values have the
same graph. :func:`nutpie_model` compiles the first
and, for every later model of the same structure, swaps the new data into the compiled function
(nutpie's ``with_data``) instead of compiling again.

The structure key is a hash of the model's whole PyMC graph: every operation, every constant's
value, every shared variable's name, type and shape (not its value), the transforms and the
sampler options. Anything that would make the compiled function differ makes the key differ,
so a cached function is never used for a model it does not compute; the numbers are identical,
draw for draw, whether the compiled model came from the cache or not (tested).

Compiled Numba code is also cached on disk by PyTensor (in its compile directory), which is what
makes the first compile of a fresh process faster after the first ever.

Some PyTensor rewrites are skipped when compiling for nutpie (:data:`SKIPPED_REWRITES`,
:func:`lean_numba_mode`): a shorter compile and a faster gradient, the same log density.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pymc as pm

    from slopeshift.model import SlopeShiftModel

__all__ = ["SKIPPED_REWRITES", "cache_info", "clear_cache", "lean_numba_mode", "nutpie_model",
           "structure_key"]

#: most compiled models kept in one process (least recently used dropped first)
MAX_ENTRIES = 16

#: PyTensor rewrites left out of the Numba compile for nutpie. ``local_greedy_distributor``
#: rewrites (a/x + b) * x as a + b * x over and over on this model's sums of products: at the
#: bundled trial it was about 5 s of a 17-s compile in a fresh process (14.6 -> 9.4 s at 200
#: patients), and without it one log-density-and-gradient evaluation took 17.9 instead of
#: 19.5 us (20 patients) and 88 instead of 100 us (200), with the same value to 1e-13
#: (``tests/test_compiled.py`` checks the value against PyTensor's default compile).
SKIPPED_REWRITES: tuple[str, ...] = ("local_greedy_distributor",)

_CACHE: OrderedDict[str, object] = OrderedDict()
_LOCK = threading.Lock()
_STATS = {"hits": 0, "misses": 0}


def structure_key(pm_model: pm.Model, **options) -> str:
    """A hash of everything in ``pm_model`` that the compiled log density depends on.

    Shared variables count by name, type and shape only (their values are the data that
    :func:`nutpie_model` swaps in); constants count by value. The dimension lengths of the
    model's free variables are constants, so models of other sizes have other keys.

    Parameters
    ----------
    pm_model : pymc.Model
    **options
        Compile options that change the compiled function (hashed too).

    Returns
    -------
    str
        A hex digest.
    """
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import toposort

    outputs = [*pm_model.basic_RVs, *pm_model.deterministics, *pm_model.potentials]
    h = hashlib.sha256()
    ids: dict = {}

    def ref(var) -> str:
        got = ids.get(var)
        if got is not None:
            return got
        if isinstance(var, SharedVariable):
            value = var.get_value(borrow=True)
            if _swappable(var):
                got = f"S:{var.name}:{var.type}:{np.shape(value)}"
            elif isinstance(value, np.ndarray):  # anyone else's shared array: by value
                got = f"S:{var.name}:{var.type}:{hashlib.sha256(value.tobytes()).hexdigest()}"
            else:  # a random generator's state is not data: only its type counts
                got = f"S:{var.name}:{var.type}"
        elif isinstance(var, Constant):
            data = np.asarray(var.data)
            digest = hashlib.sha256(data.tobytes()).hexdigest() if data.dtype != object else (
                repr(var.data))
            got = f"C:{var.type}:{data.shape}:{digest}"
        elif var.owner is None:
            got = f"I:{var.name}:{var.type}"
        else:
            raise RuntimeError("structure_key visited a variable before its owner")
        ids[var] = got
        return got

    for node in toposort(outputs):
        op = node.op
        props = getattr(op, "__props__", None)
        # an operation without __props__ compares by identity: by id, never shared by mistake
        op_repr = (f"{type(op).__module__}.{type(op).__qualname__}"
                   f"{[(p, repr(getattr(op, p))) for p in props] if props else id(op)}")
        h.update(f"{op_repr}({','.join(ref(i) for i in node.inputs)})\n".encode())
        for j, out in enumerate(node.outputs):
            ids[out] = f"N{len(ids)}.{j}:{out.type}"
    named = sorted(
        (name, ref(var) if var.owner is None else ids.get(var, "?"))
        for name, var in pm_model.named_vars.items()
    )
    h.update(repr(named).encode())
    h.update(repr(sorted((rv.name, type(tr).__name__, repr(getattr(tr, "__dict__", "")))
                         for rv, tr in pm_model.rvs_to_transforms.items())).encode())
    h.update(repr(sorted((k, repr(v)) for k, v in options.items())).encode())
    return h.hexdigest()


def nutpie_model(model: SlopeShiftModel, initial_points: dict, jitter_rvs: set):
    """nutpie's compiled model for ``model``: from the cache when its structure was compiled.

    Parameters
    ----------
    model : SlopeShiftModel
    initial_points : dict
        Starting values by variable name (see :meth:`SlopeShiftModel.initial_values`).
    jitter_rvs : set
        The free variables whose starts get nutpie's uniform jitter.

    Returns
    -------
    compiled : nutpie.compile_pymc.CompiledPyMCModel
        With ``model``'s data, starts and coordinates.
    from_cache : bool
        Whether it came from the cache (no compile).
    """
    import nutpie
    from pymc.initial_point import make_initial_point_fn

    helpers = _nutpie_helpers()
    pm_model = model.pymc_model
    jitter_names = sorted(rv.name for rv in jitter_rvs)
    key = structure_key(pm_model, sampler="nutpie", backend="numba", jitter=jitter_names,
                        starts=sorted(initial_points), skipped=SKIPPED_REWRITES)
    cached = _lookup(key) if helpers is not None else None
    if cached is None:
        with lean_numba_mode():
            compiled = nutpie.compile_pymc_model(
                pm_model, initial_points=initial_points, jitter_rvs=jitter_rvs
            )
        _store(key, compiled)
        with _LOCK:
            _STATS["misses"] += 1
        return compiled, False
    # the same graph: swap in this model's data, starts and coordinates
    _prepare_dims_and_coords, _rv_dict_to_flat_array_wrapper, _wrap_with_lock = helpers
    mine = _shared_by_name(pm_model)
    shared = {var.name: mine[var.name].get_value(borrow=True)
              for var in cached.shared_var_keys if _swappable(var)}
    compiled = cached.with_data(**shared)
    names, _, shapes = compiled.shape_info
    n_free = len(pm_model.free_RVs)
    start_fn = _wrap_with_lock(make_initial_point_fn(
        model=pm_model, overrides=initial_points, default_strategy="support_point",
        jitter_rvs=jitter_rvs, return_transformed=True,
    ))
    reparameterized = compiled.reparameterized_names
    dims, coords = _prepare_dims_and_coords(pm_model, compiled.shape_info, reparameterized)
    with _LOCK:
        _STATS["hits"] += 1
    return dataclasses.replace(
        compiled,
        initial_point_func=_rv_dict_to_flat_array_wrapper(start_fn, names[:n_free],
                                                          shapes[:n_free]),
        dims=dims,
        _coords=coords,
    ), True


_MODE_LOCK = threading.Lock()


@contextlib.contextmanager
def lean_numba_mode():
    """Within this context, PyTensor's ``"NUMBA"`` mode skips :data:`SKIPPED_REWRITES`.

    nutpie compiles with the mode named ``"NUMBA"`` and takes no mode of its own, so the
    predefined mode is swapped for the duration (under a lock) and restored after, also when
    the compile fails.

    Yields
    ------
    None

    Examples
    --------
    >>> import nutpie
    >>> from slopeshift import SlopeShiftModel, example_trial, compiled
    >>> model = SlopeShiftModel(example_trial())
    >>> with compiled.lean_numba_mode():  # doctest: +SKIP
    ...     fn = nutpie.compile_pymc_model(model.pymc_model)
    """
    from pytensor.compile import mode as pt_mode

    with _MODE_LOCK:
        saved = pt_mode.predefined_modes["NUMBA"]
        pt_mode.predefined_modes["NUMBA"] = saved.excluding(*SKIPPED_REWRITES)
        try:
            yield
        finally:
            pt_mode.predefined_modes["NUMBA"] = saved


def _nutpie_helpers() -> tuple | None:
    """nutpie's (private) helpers that a reused compiled model needs, or None when this
    nutpie lacks them: then every model compiles, as without the cache."""
    try:
        from nutpie.compile_pymc import (
            _prepare_dims_and_coords,
            _rv_dict_to_flat_array_wrapper,
            _wrap_with_lock,
        )
    except ImportError:
        return None
    return _prepare_dims_and_coords, _rv_dict_to_flat_array_wrapper, _wrap_with_lock


def _lookup(key: str):
    """The cached compiled model of ``key`` (now the most recently used), or None."""
    with _LOCK:
        got = _CACHE.get(key)
        if got is not None:
            _CACHE.move_to_end(key)
        return got


def _store(key: str, compiled) -> None:
    """Keep ``compiled``; beyond :data:`MAX_ENTRIES`, drop the least recently used."""
    with _LOCK:
        _CACHE[key] = compiled
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)


def _swappable(var) -> bool:
    """Whether a shared variable is data that a cached model may take from another model:
    the data (``data_*``) and prior parameters (``prior_*``) of SlopeShiftModel._build."""
    return bool(var.name) and var.name.startswith(("data_", "prior_"))


def _shared_by_name(pm_model: pm.Model) -> dict:
    """The shared variables of ``pm_model``'s graph, by name."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import ancestors

    outputs = [*pm_model.basic_RVs, *pm_model.deterministics, *pm_model.potentials]
    return {v.name: v for v in ancestors(outputs) if isinstance(v, SharedVariable)
            and _swappable(v)}


def cache_info() -> dict:
    """Cache statistics: ``{"entries", "hits", "misses"}`` in this process."""
    with _LOCK:
        return {"entries": len(_CACHE), **_STATS}


def clear_cache() -> None:
    """Forget every compiled model of this process (the on-disk Numba cache stays)."""
    with _LOCK:
        _CACHE.clear()
        _STATS.update(hits=0, misses=0)
