#!/usr/bin/env bash
# Regenerate the published real-data experiments, in order, resuming where the last sitting stopped (records are the
# checkpoint). Run it from a worktree at a fixed commit so edits never change the code under a sweep, with the
# records written into the checkout that commits them:
#   git worktree add /work/wt-sweep <commit> && cd /work/wt-sweep && bash scripts/sweep_real.sh /work/main/reports/records
# Order: the two small single-backbone experiments, then seed 0 of the backbone comparison (a first answer on every
# backbone), the equal-budget tuning, then the backbone comparison's other seeds.
set -euo pipefail
records=${1:?usage: sweep_real.sh RECORDS_FOLDER (e.g. /path/to/checkout/reports/records)}
python=${PYTHON:-python}
cd "$(dirname "$0")/.."
run() {  # run NAME [--only ...]: one experiment into RECORDS_FOLDER/NAME
  local name=$1; shift
  "$python" -m benchmark run "experiments/$name.yaml" --set "run.output=$records/$name" --quiet "$@"
}
share() {  # share NAME FROM: runs of NAME already trained by experiment FROM are the same runs (same ids): copy them
  "$python" - "$records" "$1" "$2" <<'PY'
import shutil, sys
from pathlib import Path
from benchmark.config import load_config
from benchmark.rundir import BEST, EPOCHS, PREDICTIONS, RECORD
from benchmark.sweep import open_sweep
records, name, source_name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = load_config(f"experiments/{name}.yaml", [f"run.output={records / name}"])
copied = 0
for run in open_sweep(cfg, decode_images=False).runs:
    source, target = records / source_name / "runs" / run.run_id, records / name / "runs" / run.run_id
    if (source / RECORD).is_file() and not (target / RECORD).exists():
        target.mkdir(parents=True, exist_ok=True)
        for file in (EPOCHS, PREDICTIONS, BEST, RECORD):  # the record last: the commit point
            if (source / file).is_file():
                shutil.copy2(source / file, target / file)
        copied += 1
print(f"{name}: {copied} runs taken from {source_name}")
PY
}
run solder-binary-cpu
run solder-defects-cpu
share solder-backbones-cpu solder-defects-cpu
run solder-backbones-cpu --only seed=0
share solder-defects-tuned-cpu solder-defects-cpu
run solder-defects-tuned-cpu
run solder-backbones-cpu
echo "all real-data experiments done"
