"""Can an approximation replace NUTS for exploration? Laplace + PSIS and full-rank ADVI.

Fits the default model of a trial (the bundled trial, or ``--patients N`` simulated with
realistic natural history) in three ways and prints what each says about the headline numbers:

- NUTS (``fit()``, the reference);
- a Laplace approximation at the posterior mode (L-BFGS in the unconstrained space, Hessian by
  central differences of the gradient), corrected by Pareto-smoothed importance sampling: the
  Pareto k-hat says whether the Gaussian is close enough to the posterior for the weights to
  be trusted (k-hat < 0.7);
- full-rank ADVI (``pymc.fit(method="fullrank_advi")``), started at the same point.

    python benchmarks/bench_approximate.py                 # the bundled trial
    python benchmarks/bench_approximate.py --patients 200
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _flat_logp(model):
    """log p and its gradient as functions of one flat vector of the unconstrained values."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fn
    from pymc.pytensorf import join_nonshared_inputs

    pm_model = model.pymc_model
    start = make_initial_point_fn(model=pm_model, overrides=model.initial_values(),
                                  jitter_rvs=set(), return_transformed=True)(1)
    values = pm_model.value_vars
    logp = pm_model.logp()
    grad = pt.concatenate([g.ravel() for g in pt.grad(logp, values)])
    (lp, g), flat = join_nonshared_inputs(start, [logp, grad], values)
    fn = pytensor.function([flat], [lp, g])
    x0 = np.concatenate([np.ravel(start[v.name]) for v in values])
    return fn, x0


def laplace_psis(model, draws: int, seed: int) -> dict:
    """Laplace at the mode, then PSIS: k-hat and the importance ESS of ``draws`` proposals."""
    import scipy.optimize
    from arviz_stats.base import array_stats

    t = time.perf_counter()
    fn, x0 = _flat_logp(model)
    res = scipy.optimize.minimize(lambda x: tuple(-a for a in fn(x)), x0, jac=True,
                                  method="L-BFGS-B", options={"maxiter": 10_000})
    x = res.x
    d = x.size
    hess = np.empty((d, d))
    h = 1e-5
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        hess[:, j] = (fn(x + e)[1] - fn(x - e)[1]) / (2 * h)
    prec = -(hess + hess.T) / 2
    min_eig = float(np.linalg.eigvalsh(prec).min())
    out = {"dims": d, "optimiser": res.message, "min_eigenvalue": min_eig}
    if min_eig <= 0:
        return out | {"k_hat": np.inf, "importance_ess": 0.0,
                      "seconds": time.perf_counter() - t}
    chol = np.linalg.cholesky(np.linalg.inv(prec))
    z = np.random.default_rng(seed).standard_normal((draws, d))
    xs = x + z @ chol.T
    lw = np.array([fn(xi)[0] for xi in xs]) + 0.5 * (z**2).sum(axis=1)
    lw = np.where(np.isfinite(lw), lw, -np.inf)
    slw, k_hat = array_stats.psislw(lw)
    w = np.exp(slw - slw.max())
    w /= w.sum()
    return out | {"k_hat": float(k_hat), "importance_ess": float(1 / np.sum(w**2)),
                  "seconds": time.perf_counter() - t}


def advi(model, steps: int, draws: int, seed: int) -> dict:
    """Full-rank ADVI from the run-in least-squares start; headline posterior summaries."""
    import pymc as pm

    t = time.perf_counter()
    with model.pymc_model:
        approx = pm.fit(steps, method="fullrank_advi", random_seed=seed, progressbar=False,
                        start=model.initial_values())
    post = approx.sample(draws, random_seed=seed)["posterior"]
    hist = np.asarray(approx.hist)
    return {"final_loss": float(np.mean(hist[-500:])), "seconds": time.perf_counter() - t,
            **{f"{v}_mean": float(np.asarray(post[v]).mean())
               for v in ("rho_bar", "theta", "sd_drift", "sigma")}}


def main() -> None:
    from slopeshift import SlopeShiftModel, example_trial, simulate_realistic_trial

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=0, help="0: the bundled trial")
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--advi-steps", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = (example_trial() if args.patients == 0 else simulate_realistic_trial(
        args.patients, gaps=(3.0, 3.0, 5.0), effect=0.4, enrolment_max_slope="median",
        random_seed=args.seed)[0])
    model = SlopeShiftModel(data)
    t = time.perf_counter()
    fit = model.fit(random_seed=args.seed, progressbar=False, check=False)
    pop = fit.population().set_index("quantity").loc["rho_bar"]
    post = fit.posterior
    print(f"NUTS: {time.perf_counter() - t:.1f} s; rho_bar mean {pop['mean']:.3f}, "
          f"theta {float(post['theta'].mean()):.3f}, sd_drift "
          f"{float(post['sd_drift'].mean()):.3f}, sigma {float(post['sigma'].mean()):.3f}; "
          f"diagnostics ok: {fit.diagnostics().attrs['ok']}")
    print("Laplace + PSIS:", laplace_psis(model, args.draws, args.seed))
    print("full-rank ADVI:", advi(model, args.advi_steps, args.draws, args.seed))


if __name__ == "__main__":
    main()
