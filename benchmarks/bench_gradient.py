"""Time of one log-density-and-gradient evaluation of the default model, by trial size.

Compiles the default model of the bundled trial and of simulated trials (visits monthly) with
nutpie's Numba backend and times the compiled function alone, which is what every leapfrog step
of NUTS pays. It uses only nutpie and the model's PyMC graph, so it runs on older versions of
slopeshift too (``PYTHONPATH=<old checkout>/src``) for a before/after comparison in one run.

    python benchmarks/bench_gradient.py --sizes 20 2000 10000
"""

from __future__ import annotations

import argparse
import time
import timeit
import warnings

import numpy as np


def per_gradient(n: int, repeat: int = 3) -> dict:
    import nutpie

    from slopeshift import SlopeShiftModel, example_trial, simulate_trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = example_trial() if n == 20 else simulate_trial(
            n, n_untreated=max(1, n // 20), sd_drift=0.5, acceleration=-0.023, random_seed=1)[0]
        model = SlopeShiftModel(data)
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model.pymc_model,
                                             initial_points=model.initial_values())
        t_compile = time.perf_counter() - t0
    fn = compiled.logp_func
    args = [compiled.initial_point_func(0)] + [
        np.asarray(v.get_value()) for v in fn.maker.fgraph.inputs[1:]]
    jit = fn.vm.jit_fn
    jit(*args)
    number = max(1, int(0.5 / max(timeit.timeit(lambda: jit(*args), number=1), 1e-6)))
    best = min(timeit.repeat(lambda: jit(*args), number=number, repeat=repeat)) / number
    return {"patients": n, "visits": int(model.design.sizes["visit"]),
            "gradient_us": round(best * 1e6, 1), "compile_s": round(t_compile, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 2000])
    args = parser.parse_args()
    for n in args.sizes:
        print(per_gradient(n), flush=True)
