"""Time of one log-density-and-gradient evaluation of the default model, by trial size.

Compiles the default model of the bundled trial and of simulated trials (visits monthly) with
nutpie's Numba backend and times the compiled function alone, which is what every leapfrog step
of NUTS pays. It uses only nutpie and the model's PyMC graph, so it runs on older versions of
slopeshift too (``PYTHONPATH=<old checkout>/src``) for a before/after comparison in one run.

    python benchmarks/bench_gradient.py --sizes 20 2000 10000
    python benchmarks/bench_gradient.py --sizes 20 200 --lean   # as slopeshift's fit compiles

``--lean`` compiles as :func:`slopeshift.compiled.nutpie_model` does, without
``compiled.SKIPPED_REWRITES``; without it, nutpie's default compile. Run each in a fresh process
(the compile time includes loading PyTensor's on-disk Numba cache, warm after a first run).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import timeit
import warnings

import numpy as np


def per_gradient(n: int, repeat: int = 3, lean: bool = False) -> dict:
    import nutpie

    from slopeshift import SlopeShiftModel, example_trial, simulate_trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = example_trial() if n == 20 else simulate_trial(
            n, n_untreated=max(1, n // 20), sd_drift=0.5, acceleration=-0.023, random_seed=1)[0]
        model = SlopeShiftModel(data)
        # the sampler's starting coordinates (older versions, without _sampler_starts, sample
        # initial_values()'s own coordinates)
        starts = getattr(model, "_sampler_starts", lambda s: s)(model.initial_values())
        if lean:
            from slopeshift.compiled import lean_numba_mode
            mode = lean_numba_mode()
        else:
            mode = contextlib.nullcontext()
        t0 = time.perf_counter()
        with mode:
            compiled = nutpie.compile_pymc_model(model.pymc_model, initial_points=starts)
        t_compile = time.perf_counter() - t0
    fn = compiled.logp_func
    args = [compiled.initial_point_func(0)] + [
        np.asarray(v.get_value()) for v in fn.maker.fgraph.inputs[1:]]
    jit = fn.vm.jit_fn
    jit(*args)
    number = max(1, int(0.5 / max(timeit.timeit(lambda: jit(*args), number=1), 1e-6)))
    best = min(timeit.repeat(lambda: jit(*args), number=number, repeat=repeat)) / number
    return {"patients": n, "visits": int(model.design.sizes["visit"]), "lean": lean,
            "gradient_us": round(best * 1e6, 1), "compile_s": round(t_compile, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 2000])
    parser.add_argument("--lean", action="store_true",
                        help="compile without slopeshift.compiled.SKIPPED_REWRITES")
    args = parser.parse_args()
    for n in args.sizes:
        print(per_gradient(n, lean=args.lean), flush=True)
