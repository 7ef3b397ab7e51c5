"""`sidecar validate` vs `check-jsonschema` on the same file and schema, side by side.

Both are run as whole commands, alternating, N times each; prints the median of each and the
ratio of medians (lower is better for sidecar). check-jsonschema checks the schema only;
sidecar validate also runs the semantic rules and maps positions.

    .venv/bin/python bench/validate.py [FILE] [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from common import REPO, alternate


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
    commands = {"sidecar": (ours, dict(os.environ)), "check-jsonschema": (theirs, dict(os.environ))}
    alternate(1, commands)  # warm the page cache
    medians = alternate(args.runs, commands)
    ma, mb = medians["sidecar"], medians["check-jsonschema"]
    print(f"file: {args.file}  runs: {args.runs} each, alternating")
    print(f"sidecar validate   median {ma * 1000:7.1f} ms")
    print(f"check-jsonschema   median {mb * 1000:7.1f} ms")
    print(f"ratio sidecar/check-jsonschema: {ma / mb:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
