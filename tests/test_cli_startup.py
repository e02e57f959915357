"""`python -m benchmark` starts quickly: building the parser imports no heavy library (they load on first use)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "timm", "sklearn", "scipy", "pandas", "matplotlib", "seaborn", "ray")


def test_building_the_parser_imports_no_heavy_library():
    code = ("import json, sys; import benchmark.cli as cli; cli.build_parser(); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
