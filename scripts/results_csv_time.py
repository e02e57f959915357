"""Time results.csv at N records: one rebuild, and the table time of a whole N-run sweep under both policies.

    python scripts/results_csv_time.py [N]      (default 1000; writes a scratch store under a temp folder)

The records are copies of a committed one (each with its own run id and a 4-epoch history). A rebuild reads every
record and epoch history and writes results.csv and epochs.csv, so its time T(k) grows linearly with the k records
present: rebuilding after every run costs sum T(k) over k = 1..N (quadratic), rebuilding once per sweep costs T(N).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmark.store import Store

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = sorted(REPO.glob("reports/archive/*/records/runs/*/record.json"))[0]


def fill(store: Store, n: int) -> None:
    base = json.loads(TEMPLATE.read_text())
    for i in range(n):
        run_id = f"{i:012x}"
        store.write_record(base | {"run_id": run_id, "config_hash": run_id, "fold": i % 5, "seed": i // 5})
        epochs = pd.DataFrame({"run_id": run_id, "epoch": range(1, 5), "train_loss": 0.5, "val_loss": 0.4})
        epochs.to_csv(store.run(run_id).epochs_path, index=False)


def rebuild_time(store: Store, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        store.rebuild_tables()
        best = min(best, time.perf_counter() - tick)
    return best


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        half, full = Store(Path(tmp) / "half"), Store(Path(tmp) / "full")
        fill(half, n // 2)
        fill(full, n)
        t_half, t_full = rebuild_time(half), rebuild_time(full)
    slope = (t_full - t_half) / (n - n // 2)
    per_run_total = sum(max(t_half + slope * (k - n // 2), 0.0) for k in range(1, n + 1))
    print(f"one rebuild at {n // 2} records: {t_half:.2f} s; at {n} records: {t_full:.2f} s")
    print(f"table time of a {n}-run sweep: rebuild after every run ≈ {per_run_total:.0f} s; "
          f"once per sweep: {t_full:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
