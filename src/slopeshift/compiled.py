"""Compiled models, cached by structure: compile once, fit any data of the same shape.

Compiling a model for nutpie (PyTensor's graph rewrites, then Numba) takes about 13 s for the
bundled trial in a fresh process; sampling it takes about 1 s.
:class:`~slopeshift.SlopeShiftModel` builds its graph with every data array and every prior
parameter as a PyTensor *shared variable* (an input of the compiled function, not a constant
folded into it), so two models that differ only in their data or their prior values have the
same graph. :func:`nutpie_model` compiles the first and, for every later model of the same
structure, points the compiled function at the new data instead of compiling again: nutpie's
C callbacks are generated here (:data:`_WRAPPER`) to read every data input through nutpie's
user-data pointer, an array of addresses.

The structure key is a hash of the model's whole PyMC graph: every operation, every constant's
value, every shared variable's name, type and shape (not its value), the transforms and the
sampler options. Anything that would make the compiled function differ makes the key differ,
so a cached function is never used for a model it does not compute; the numbers are identical,
draw for draw, whether the compiled model came from the cache or not (tested).

Because those callbacks hold no address of their own, Numba caches them on disk
(:func:`disk_cache_dir`): a later process loads a structure's machine code in a fraction of a
second instead of compiling it. Everything is compiled without fast-math, so that a seed gives
the same numbers, draw for draw, whether the model was compiled cold, compiled with PyTensor's
own disk cache warm, or loaded (tested in a child process).

Some PyTensor rewrites are skipped when compiling for nutpie (:data:`SKIPPED_REWRITES`,
:func:`lean_numba_mode`): a shorter compile and a faster gradient, the same log density.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import re
import sys
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pymc as pm

    from slopeshift.model import SlopeShiftModel

__all__ = ["SKIPPED_REWRITES", "cache_info", "clear_cache", "disk_cache_dir", "lean_numba_mode",
           "logp_and_gradient", "nutpie_model", "structure_key"]

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
_STATS = {"hits": 0, "disk_hits": 0, "misses": 0}


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
    return _structure_key(pm_model, **options)[0]


def _structure_key(pm_model: pm.Model, **options) -> tuple[str, bool]:
    """:func:`structure_key`, and whether it is the same in every process (no operation
    counted by identity or by a representation holding a memory address): only such keys
    are used on disk."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import toposort

    outputs = [*pm_model.basic_RVs, *pm_model.deterministics, *pm_model.potentials]
    h = hashlib.sha256()
    ids: dict = {}
    stable = True
    unstable: list = []  # constants whose representation holds a memory address

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
            if _ADDRESS.search(digest):
                unstable.append(var)
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
        # (an empty __props__ says that every instance of the type is the same operation)
        op_repr = (f"{type(op).__module__}.{type(op).__qualname__}"
                   f"{[(p, repr(getattr(op, p))) for p in props] if props is not None else id(op)}")
        stable = stable and props is not None and not _ADDRESS.search(op_repr)
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
    return h.hexdigest(), stable and not unstable


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def nutpie_model(model: SlopeShiftModel, initial_points: dict, jitter_rvs: set):
    """nutpie's compiled model for ``model``: from the cache when its structure was compiled.

    Looks in this process's cache first, then in the on-disk cache (:func:`disk_cache_dir`),
    and compiles only when neither has the structure (then stores it in both).

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
    source : {"compiled", "memory", "disk"}
        Where the compiled model came from: compiled now, this process's cache, or the disk.
    """
    import nutpie

    pm_model = model.pymc_model
    jitter_names = sorted(rv.name for rv in jitter_rvs)
    key, stable = _structure_key(pm_model, sampler="nutpie", backend="numba",
                                 jitter=jitter_names, starts=sorted(initial_points),
                                 skipped=SKIPPED_REWRITES)
    entry, source = _lookup(key), "memory"
    folder = disk_cache_dir() if stable else None
    place = None if folder is None else folder / _disk_name(key)
    if entry is None and place is not None and _nutpie_helpers() is not None:
        entry, source = _CompiledStructure.load(place), "disk"
    if entry is None:
        try:
            if _nutpie_helpers() is None:
                raise _Unsupported("this nutpie lacks the helpers")
            entry, source = _CompiledStructure.compile(pm_model, place), "compiled"
        except _Unsupported:
            # a model or a nutpie that the generated callbacks cannot serve: nutpie's own
            # compile, every time (no cache)
            import pytensor

            with pytensor.config.change_flags(numba__fastmath=False), lean_numba_mode():
                compiled = nutpie.compile_pymc_model(
                    pm_model, initial_points=initial_points, jitter_rvs=jitter_rvs
                )
            with _LOCK:
                _STATS["misses"] += 1
            return compiled, "compiled"
        if folder is not None:
            _prune(folder)
    _store(key, entry)
    with _LOCK:
        _STATS[{"memory": "hits", "disk": "disk_hits", "compiled": "misses"}[source]] += 1
    return entry.bind(pm_model, initial_points, jitter_rvs), source


#: version of the generated wrapper's source; part of the on-disk key
_WRAPPER_VERSION = 1
#: most compiled structures kept on disk (least recently used removed first)
MAX_DISK_ENTRIES = 64
_CDATA = (
    "numba.carray(address_as_void_pointer(ud[{i}]), {shape}, np.{dtype})"
)
_WRAPPER = '''"""Generated by slopeshift.compiled (do not edit): nutpie's C callbacks for one model
structure, reading the data through the user-data pointer so that Numba can cache them."""
import numba
import numpy as np

from slopeshift._callbacks import address_as_void_pointer

# PyTensor's compiled log density (and gradient) and expansion: set before the first compile,
# not needed when the callbacks load from Numba's cache
inner_logp = None
inner_expand = None
N_DIM = {n_dim}
N_EXPANDED = {n_expanded}
N_SHARED = {n_shared}


def logp(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        ud = numba.carray(user_data_, (N_SHARED,), np.uint64)
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp_out = numba.carray(logp_, ())
        logp_val, grad = inner_logp(x{logp_args})
        logp_out[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0


def expand(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        ud = numba.carray(user_data_, (N_SHARED,), np.uint64)
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = inner_expand(x{expand_args})
        out[...] = values
    except Exception:  # noqa: BLE001
        return -2
    return 0
'''


#: what :class:`_CompiledStructure` keeps on disk beside the callbacks
_KEPT_ON_DISK = ("n_dim", "n_expanded", "shape_info", "reparameterized_names", "shared", "fixed")


class _Unsupported(Exception):
    """A model that the generated callbacks cannot serve (a shared input is not an array), or
    a nutpie without the helpers they need."""


@dataclasses.dataclass
class _CompiledStructure:
    """nutpie's callbacks for one model structure, with what binding a model's data needs.

    The callbacks are Numba C functions generated from :data:`_WRAPPER`: they read every
    shared input (the data pack, integer data, prior parameters) through one array of
    addresses (nutpie's user-data pointer), so they do not depend on where this model's data
    live, and Numba can cache them on disk.
    """

    logp_cfunc: object
    expand_cfunc: object
    n_dim: int
    n_expanded: int
    shape_info: tuple
    reparameterized_names: list
    shared: list  # [(name, dtype, shape)] in the order of the address array
    fixed: dict  # values of shared inputs that are not swappable data (part of the key)
    logp_func: object = None  # PyTensor's functions (only after a compile in this process)
    expand_func: object = None

    @classmethod
    def compile(cls, pm_model, folder=None) -> _CompiledStructure:
        """Compile ``pm_model``'s structure; with ``folder``, also keep it there on disk."""
        import pytensor

        # without fast-math the compiled code gives the same bits however it was built (fresh,
        # from PyTensor's disk cache, or loaded from ours), so a seed gives the same numbers
        # whatever was compiled before; PyTensor keys its own cache by the flag
        with pytensor.config.change_flags(numba__fastmath=False):
            return cls._compile(pm_model, folder)

    @classmethod
    def _compile(cls, pm_model, folder) -> _CompiledStructure:
        from nutpie.compile_pymc import _make_functions

        with lean_numba_mode():
            n_dim, n_expanded, logp_fn, expand_fn, _, shape_info, reparam = _make_functions(
                pm_model, mode="NUMBA", compute_grad=True, join_expanded=True,
                pymc_initial_point_fn=lambda seed: {},
            )
        order, shared, fixed = {}, [], {}
        for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
            if var.name in order:
                continue
            value = var.get_value(borrow=True)
            if not isinstance(value, np.ndarray) or not var.name:
                raise _Unsupported(var)
            order[var.name] = len(shared)
            shared.append((var.name, np.dtype(value.dtype).name, tuple(value.shape)))
            if not _swappable(var):
                fixed[var.name] = np.array(value, copy=True)

        def args(fn) -> str:
            return "".join(", " + _CDATA.format(i=order[v.name], shape=shared[order[v.name]][2],
                                                dtype=shared[order[v.name]][1])
                           for v in fn.get_shared())

        source = _WRAPPER.format(n_dim=n_dim, n_expanded=n_expanded, n_shared=len(shared),
                                 logp_args=args(logp_fn), expand_args=args(expand_fn))
        entry = cls(None, None, n_dim, n_expanded, shape_info, list(reparam), shared, fixed,
                    logp_fn, expand_fn)
        module = _wrapper_module(source, folder)
        module.inner_logp, module.inner_expand = logp_fn.vm.jit_fn, expand_fn.vm.jit_fn
        cached = folder is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            entry.logp_cfunc, entry.expand_cfunc = _cfuncs(module, cache=cached)
        if cached and not any("Cannot cache" in str(w.message) for w in caught):
            _write_atomic(folder / "meta.pkl", pickle.dumps(
                {f: getattr(entry, f) for f in _KEPT_ON_DISK}))
        return entry

    @classmethod
    def load(cls, folder) -> _CompiledStructure | None:
        """The structure kept in ``folder``, or None (absent, stale or unreadable)."""
        try:
            meta = pickle.loads((folder / "meta.pkl").read_bytes())
            module = _wrapper_module(None, folder)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                logp_cfunc, expand_cfunc = _cfuncs(module, cache=True)
            if not (logp_cfunc.cache_hits and expand_cfunc.cache_hits):
                return None
            os.utime(folder / "meta.pkl")  # recently used (see _prune)
        except Exception:  # noqa: BLE001 - anything amiss on disk: compile instead
            return None
        return cls(logp_cfunc, expand_cfunc, **meta)

    def bind(self, pm_model, initial_points: dict, jitter_rvs: set):
        """nutpie's compiled model with ``pm_model``'s data, starts and coordinates."""
        from nutpie.compile_pymc import CompiledPyMCModel

        _prepare_dims_and_coords, _rv_dict_to_flat_array_wrapper, _wrap_with_lock = (
            _nutpie_helpers())
        from pymc.initial_point import make_initial_point_fn

        mine = _shared_by_name(pm_model)
        data = {}
        for name, dtype, shape in self.shared:
            value = self.fixed[name] if name in self.fixed else mine[name].get_value(borrow=True)
            value = np.array(value, dtype=dtype, order="C", copy=True)
            if value.shape != shape:  # the key includes every shape: a mismatch is a bug
                raise RuntimeError(f"compiled model: {name} has shape {value.shape}, "
                                   f"not {shape}")
            value.flags.writeable = False
            data[name] = value
        addresses = np.array([data[name].ctypes.data for name, _, _ in self.shared],
                             dtype=np.uint64)
        names, _, shapes = self.shape_info
        n_free = len(pm_model.free_RVs)
        start_fn = _wrap_with_lock(make_initial_point_fn(
            model=pm_model, overrides=initial_points, default_strategy="support_point",
            jitter_rvs=jitter_rvs, return_transformed=True,
        ))
        dims, coords = _prepare_dims_and_coords(pm_model, self.shape_info,
                                                self.reparameterized_names)
        return CompiledPyMCModel(
            _n_dim=self.n_dim, dims=dims, _coords=coords,
            _shapes={name: tuple(shape) for name, _, shape in zip(*self.shape_info, strict=True)},
            compiled_logp_func=self.logp_cfunc, compiled_expand_func=self.expand_cfunc,
            initial_point_func=_rv_dict_to_flat_array_wrapper(start_fn, names[:n_free],
                                                              shapes[:n_free]),
            # the arrays the addresses point to: kept alive by the compiled model
            shared_data=data, shared_var_keys={}, user_data=addresses,
            n_expanded=self.n_expanded, shape_info=self.shape_info,
            logp_func=self.logp_func, expand_func=self.expand_func,
            reparameterized_names=self.reparameterized_names,
        )


def logp_and_gradient(compiled, point: np.ndarray) -> tuple[float, np.ndarray]:
    """The log density and its gradient at ``point`` (unconstrained, flat), through the
    compiled model's C callback: what nutpie evaluates while sampling.

    Parameters
    ----------
    compiled : nutpie.compile_pymc.CompiledPyMCModel
        From :func:`nutpie_model`.
    point : numpy.ndarray
        A flat point of the model's unconstrained space (length ``compiled.n_dim``).

    Returns
    -------
    float, numpy.ndarray
        The log density and its gradient.
    """
    import ctypes

    x = np.ascontiguousarray(point, dtype=np.float64)
    grad = np.zeros(compiled.n_dim)
    logp = np.zeros(())
    dbl = ctypes.POINTER(ctypes.c_double)
    code = compiled.compiled_logp_func.ctypes(
        compiled.n_dim, x.ctypes.data_as(dbl), grad.ctypes.data_as(dbl),
        logp.ctypes.data_as(dbl), compiled.user_data.ctypes.data)
    if code not in (0, 3, 4):
        raise RuntimeError(f"the compiled log density failed (code {code})")
    return float(logp), grad


def _cfuncs(module, cache: bool) -> tuple:
    """The two Numba C callbacks of a generated wrapper ``module``."""
    import numba
    from numba import types

    dbl = types.CPointer(types.double)
    logp_sig = types.int64(types.uint64, dbl, dbl, dbl, types.voidptr)
    expand_sig = types.int64(types.uint64, types.uint64, dbl, dbl, types.voidptr)
    # Numba names the module of PyTensor's generated functions "<dynamic>"; rebuilding their
    # environment from Numba's cache imports that name: give it Numba's own module of that name
    sys.modules.setdefault("<dynamic>", numba.core.utils._dynamic_module)
    return (numba.cfunc(logp_sig, cache=cache)(module.logp),
            numba.cfunc(expand_sig, cache=cache)(module.expand))


def _wrapper_module(source: str | None, folder):
    """The generated wrapper as a module: from ``source`` (written to ``folder`` first when
    given), or read from ``folder``."""
    import importlib.util
    import types

    if folder is None:
        module = types.ModuleType("slopeshift_compiled_wrapper")
        exec(compile(source, "<slopeshift wrapper>", "exec"), module.__dict__)  # noqa: S102
        return module
    path = folder / "wrapper.py"
    if source is not None:
        folder.mkdir(parents=True, exist_ok=True)
        # rewritten only when it differs: Numba's cache is keyed by the file's time stamp
        if not path.is_file() or path.read_text() != source:
            _write_atomic(path, source.encode())
    spec = importlib.util.spec_from_file_location(f"slopeshift_compiled_{folder.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_atomic(path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that no reader sees half a file."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)


def disk_cache_dir() -> Path | None:
    """Where compiled models are kept across processes, or None when that is switched off.

    ``$SLOPESHIFT_CACHE_DIR`` if set (``off`` or empty: no on-disk cache), else
    ``$XDG_CACHE_HOME/slopeshift/compiled`` (``~/.cache/slopeshift/compiled``). Each
    structure takes a folder of a few MB; the :data:`MAX_DISK_ENTRIES` most recently used are
    kept. Delete the folder (or call ``clear_cache(disk=True)``) at any time.

    Returns
    -------
    pathlib.Path or None
    """
    got = os.environ.get("SLOPESHIFT_CACHE_DIR")
    if got is not None:
        return None if got.strip().lower() in ("", "off", "0", "none") else Path(got)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "slopeshift" / "compiled"


def _disk_name(key: str) -> str:
    """The folder of ``key`` on disk: the key with the versions that the files depend on."""
    import numba
    import nutpie
    import pymc
    import pytensor

    versions = (sys.version, numba.__version__, nutpie.__version__, pytensor.__version__,
                pymc.__version__, _WRAPPER_VERSION)
    return hashlib.sha256(f"{key}{versions}".encode()).hexdigest()[:32]


def _prune(folder) -> None:
    """Keep the :data:`MAX_DISK_ENTRIES` most recently used structures on disk."""
    import shutil

    try:
        entries = sorted((p for p in folder.iterdir() if (p / "meta.pkl").is_file()),
                         key=lambda p: (p / "meta.pkl").stat().st_mtime)
        for old in entries[:-MAX_DISK_ENTRIES] if len(entries) > MAX_DISK_ENTRIES else []:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


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
        from nutpie.compile_pymc import (  # noqa: F401 - the compile and bind use these too
            CompiledPyMCModel,
            _make_functions,
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
    """Cache statistics of this process.

    Returns
    -------
    dict
        ``entries`` (structures held in memory), ``hits`` (models served from memory),
        ``disk_hits`` (structures loaded from :func:`disk_cache_dir`), ``misses``
        (structures compiled).
    """
    with _LOCK:
        return {"entries": len(_CACHE), **_STATS}


def clear_cache(disk: bool = False) -> None:
    """Forget every compiled model of this process; with ``disk=True`` also delete the
    on-disk cache (:func:`disk_cache_dir`).

    Parameters
    ----------
    disk : bool, default False
        Also delete the compiled models kept on disk.
    """
    import shutil

    with _LOCK:
        _CACHE.clear()
        _STATS.update(hits=0, disk_hits=0, misses=0)
    folder = disk_cache_dir()
    if disk and folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
