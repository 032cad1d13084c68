"""Wall time of `slopeshift demo`, cold and warm, and of a refit with the compiled model reused.

- cold: a fresh process with an empty PyTensor compile cache (first run after installing);
- warm: a fresh process again, with the cache the cold run left (every later run);
- refit: a second fit in the same process, reusing the compiled model (the baseline: sampling
  alone, which is what tests and repeated analyses pay).

    python benchmarks/bench_demo.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings


def _run_demo(env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slopeshift.cli", "demo", "--quiet"], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"PYTENSOR_FLAGS": f"compiledir={cache}"}
        cold = _run_demo(env)
        warm = _run_demo(env)

    from slopeshift import SlopeShiftModel, example_trial

    model = SlopeShiftModel(example_trial())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(random_seed=2021, progressbar=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.fit(random_seed=2021, progressbar=False)
        refit = time.perf_counter() - t0
    print(f"slopeshift demo, cold (empty compile cache): {cold:6.1f} s")
    print(f"slopeshift demo, warm (cache filled):        {warm:6.1f} s")
    print(f"in-process first fit (compiles the model):   {first:6.1f} s")
    print(f"in-process refit (compiled model reused):    {refit:6.1f} s   <- baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
