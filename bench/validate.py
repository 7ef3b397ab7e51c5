"""`sidecar validate` vs `check-jsonschema` on the same file and schema, side by side.

Both are run as whole commands, alternating, N times each; prints the median of each and the
ratio of medians (lower is better for sidecar). check-jsonschema checks the schema only;
sidecar validate also runs the semantic rules and maps positions.

    .venv/bin/python bench/validate.py [FILE] [-n RUNS]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?",
                        default=str(REPO / "examples" / "laravel" / ".sidecar" / "bridge.yaml"))
    parser.add_argument("-n", "--runs", type=int, default=21)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    sidecar = shutil.which("sidecar", path=str(bindir))
    checker = shutil.which("check-jsonschema", path=str(bindir))
    if not sidecar or not checker:
        print("needs sidecar and check-jsonschema in this environment (scripts/bootstrap)")
        return 2
    schema = str(REPO / "schemas" / "bridge.schema.json")
    ours = [sidecar, "validate", args.file]
    theirs = [checker, "--schemafile", schema, args.file]
    timed(ours), timed(theirs)  # warm the page cache
    a: list[float] = []
    b: list[float] = []
    for _ in range(args.runs):
        a.append(timed(ours))
        b.append(timed(theirs))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"file: {args.file}  runs: {args.runs} each, alternating")
    print(f"sidecar validate   median {ma * 1000:7.1f} ms")
    print(f"check-jsonschema   median {mb * 1000:7.1f} ms")
    print(f"ratio sidecar/check-jsonschema: {ma / mb:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
