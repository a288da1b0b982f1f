"""Run every benchmark script in bench/ one after another (each prints its own table)."""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
status = 0
for script in sorted(here.glob("*.py")):
    if script.name == Path(__file__).name:
        continue
    print(f"== {script.name}", flush=True)
    status |= subprocess.run([sys.executable, str(script)]).returncode
sys.exit(status)
