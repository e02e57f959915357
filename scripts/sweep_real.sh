#!/usr/bin/env bash
# Regenerate the published real-data experiments, in order, resuming where the last sitting stopped (records are the
# checkpoint). Run it from a worktree at a fixed commit so edits never change the code under a sweep, with the
# records written into the checkout that commits them:
#   git worktree add /work/wt-sweep <commit> && cd /work/wt-sweep && bash scripts/sweep_real.sh /work/main/reports/records
set -euo pipefail
records=${1:?usage: sweep_real.sh RECORDS_FOLDER (e.g. /path/to/checkout/reports/records)}
python=${PYTHON:-python}
cd "$(dirname "$0")/.."
run() {  # run NAME: one experiment into RECORDS_FOLDER/NAME
  "$python" -m benchmark run "experiments/$1.yaml" --set "run.output=$records/$1" --quiet
}
run solder-binary-cpu
run solder-defects-cpu
# The tuned experiment's fixed runs are solder-defects-cpu's (same ids): take their records instead of re-training.
"$python" - "$records" <<'PY'
import shutil, sys
from pathlib import Path
from benchmark.config import load_config
from benchmark.sweep import open_sweep
records = Path(sys.argv[1])
cfg = load_config("experiments/solder-defects-tuned-cpu.yaml", [f"run.output={records / 'solder-defects-tuned-cpu'}"])
for run in open_sweep(cfg, decode_images=False).runs:
    source, target = records / "solder-defects-cpu" / "runs" / run.run_id, records / cfg.name / "runs" / run.run_id
    if (source / "record.json").is_file() and not (target / "record.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("epochs.csv", "predictions.csv", "best.pt", "record.json"):  # the record last: the commit point
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
PY
run solder-defects-tuned-cpu
echo "all real-data experiments done"
