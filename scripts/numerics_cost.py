"""What portable numerics cost here: `bench` with --numerics portable and native, alternated in one sitting.

    python scripts/numerics_cost.py [--rounds 5] [--backbone resnet18] [--image-size 32] [--threads 1]

Each round runs one fresh `python -m benchmark bench` process per mode (the order alternates between rounds, so a
load that changes during the sitting hits both modes alike) and reads its training step time on a fixed in-memory
batch (the model's ceiling: no data pipeline). Prints every round and the median ratio portable / native of the
step times, training and evaluation. docs/performance.md quotes its output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("portable", "native")


def measure(mode: str, args: argparse.Namespace, folder: Path) -> dict:
    """One bench process in `mode`: (training step s on the fixed batch, evaluation images/s, its environment)."""
    out = folder / f"{mode}.json"
    command = [sys.executable, "-m", "benchmark", "bench", "--numerics", mode, "--threads", str(args.threads),
               "--backbone", args.backbone, "--image-size", str(args.image_size), "--steps", str(args.steps),
               "--quiet", "--json", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    return {"step_s": result["train"]["ceiling_step_s"], "eval_images_per_s": result["eval"]["images_per_s"],
            "environment": result["environment"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    train_ratios, eval_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = MODES if round_ % 2 == 0 else MODES[::-1]
            found = {mode: measure(mode, args, Path(tmp)) for mode in order}
            portable, native = found["portable"], found["native"]
            train_ratios.append(portable["step_s"] / native["step_s"])
            eval_ratios.append(native["eval_images_per_s"] / portable["eval_images_per_s"])
            print(f"round {round_ + 1}: training step {1000 * portable['step_s']:.0f} ms portable, "
                  f"{1000 * native['step_s']:.0f} ms native (x{train_ratios[-1]:.2f}); evaluation "
                  f"{portable['eval_images_per_s']:.0f} vs {native['eval_images_per_s']:.0f} images/s "
                  f"(x{eval_ratios[-1]:.2f})", flush=True)
    env = found["native"]["environment"]
    print(f"{args.backbone}, {args.image_size} px, {args.threads} thread(s), {env['cpu_model']} ({env['cpu_isa']}): "
          f"portable costs x{statistics.median(train_ratios):.2f} per training step "
          f"(range {min(train_ratios):.2f}-{max(train_ratios):.2f}) and x{statistics.median(eval_ratios):.2f} per "
          f"evaluated image, median of {args.rounds} alternated rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
