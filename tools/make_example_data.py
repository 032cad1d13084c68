"""Regenerate the bundled example trial (src/slopeshift/data/example_*.csv).

The example is SIMULATED, shaped like the phase II trial NCT04821479 (MODEL.md section 8):
20 patients (16 men, 4 women, mean age about 50 years, disease duration about 21 months),
one withdrawn before the first injection, 19 treated with 1-4 injections (12 with at least
three, 10 with four) about 3 months apart then about 5 months, run-in about 7.8 months, follow-up
about 6 months after the last injection. FVC (% predicted) is measured at about every third visit.

    python tools/make_example_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

from slopeshift import simulate_trial

OUT = Path(__file__).resolve().parents[1] / "src" / "slopeshift" / "data"
SEED = 20210693
START = "2019-03-04"


def main() -> None:
    cycles = [4] * 10 + [3] * 2 + [2] * 4 + [1] * 3 + [0]
    rng = np.random.default_rng(SEED)
    rng.shuffle(cycles)
    data, truth = simulate_trial(
        20, cycles_per_patient=cycles, rho=[0.6, 0.45, 0.4, 0.3], theta=-0.08, sd_patient=0.25,
        sd_patient_cycle=0.1, mu_alpha=31.1, sd_alpha=5.0, mu_beta=-1.2, sd_beta=0.45,
        dropout_per_month=0.0, random_seed=SEED,
    )
    vis = data.visits[["patient", "month", "value"]].rename(columns={"value": "alsfrs_r"})
    inj = data.injections[["patient", "month", "cycle"]]

    # FVC: same patients and injections; decline about 2.5 %/month before treatment, half of
    # the ALSFRS-R slowing after; measured at about every third visit.
    tp = truth["patients"]
    slow = truth["slowing"].set_index(["patient", "cycle"])
    fvc = []
    for pid, grp in vis.groupby("patient"):
        t = grp["month"].to_numpy()
        a = rng.normal(78.0, 12.0)
        b0 = tp.loc[pid, "beta_pre"] * 2.2
        mu = a + b0 * np.minimum(t, 0.0)
        taus = inj.loc[inj["patient"] == pid, "month"].to_numpy()
        for k, tau in enumerate(taus):
            rho_f = 0.5 * slow.loc[(pid, k + 1), "rho"]
            length = slow.loc[(pid, k + 1), "cycle_length"]
            mu = mu + b0 * (1.0 - rho_f) * np.clip(t - tau, 0.0, length)
        y = np.round(np.clip(mu + rng.normal(0.0, 5.0, t.size), 0.0, None))
        measured = (np.arange(t.size) % 3 == 0) | (t == 0.0)
        fvc.append(pd.Series(np.where(measured, y, np.nan), index=grp.index))
    vis = vis.assign(fvc=pd.concat(fvc).sort_index())

    origin = pd.Timestamp(START)
    offsets = {p: pd.Timedelta(days=int(d)) for p, d in
               zip(sorted(vis["patient"].unique()), rng.integers(0, 400, 20), strict=True)}

    def to_date(frame):
        # each patient enrols on their own date; months are relative to the first injection
        runin = -vis.groupby("patient")["month"].min()
        days = (frame["month"] + frame["patient"].map(runin)) * 30.4375
        base = frame["patient"].map(offsets) + origin
        return (base + pd.to_timedelta(np.round(days), unit="D")).dt.strftime("%Y-%m-%d")

    visits = pd.DataFrame({"patient": vis["patient"], "date": to_date(vis),
                           "alsfrs_r": vis["alsfrs_r"].astype(int), "fvc": vis["fvc"]})
    visits = visits.drop_duplicates(["patient", "date"])  # visits rounded onto the same day
    injections = pd.DataFrame({"patient": inj["patient"], "date": to_date(inj),
                               "cycle": inj["cycle"]})
    ids = sorted(vis["patient"].unique())
    sex = np.array(["M"] * 16 + ["F"] * 4)
    rng.shuffle(sex)
    patients = pd.DataFrame({
        "patient": ids,
        "age": np.round(rng.normal(50.0, 9.0, 20), 1),
        "sex": sex,
        "disease_duration": np.round(np.clip(rng.normal(20.6, 6.0, 20), 8.0, None), 1),
    })
    OUT.mkdir(parents=True, exist_ok=True)
    visits.to_csv(OUT / "example_visits.csv", index=False)
    injections.to_csv(OUT / "example_injections.csv", index=False)
    patients.to_csv(OUT / "example_patients.csv", index=False)
    print(f"wrote {len(visits)} visits, {len(injections)} injections, {len(patients)} patients"
          f" to {OUT}")


if __name__ == "__main__":
    main()
