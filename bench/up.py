"""What verifying costs: `sidecar up` vs plain `docker compose up -d --wait`, side by side.

Both run against the same running, unchanged stack (busybox `app` + claude + gate, on the test
Claude image), alternating, so each one's work is what it adds to a start that has nothing to
do: compose resolving and comparing the project for `up` (plus checking the policy volume and
handing compose the verified model on stdin), compose's own no-op for the other. A second pair
sets the check alone (`sidecar trust` on an approved project) against `docker compose config`.

    .venv/bin/python bench/up.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from common import IMAGE, REPO, alternate

sys.path.insert(0, str(REPO / "tests"))

COMPOSE = f"""\
services:
  app:
    image: {IMAGE}
    init: true
    command: [sleep, "36000"]
    volumes: ["./:/app"]
"""
BRIDGE = """\
version: "1"
commands:
  tool: {{container: app, exec: "true", workdir: /app, paths: {{/workspace: /app}}}}
sidecar:
  image: {image}
  firewall: {{enabled: false}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from image.build import ensure_claude_image

    sidecar = str(Path(sys.executable).parent / "sidecar")
    project = f"benchup-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-up-"))
    root = tmp / project
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text(COMPOSE)
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE.format(image=ensure_claude_image()))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
           "COMPOSE_PROJECT_NAME": project, "XDG_STATE_HOME": str(tmp / "state")}
    compose = ["docker", "compose", "--project-directory", str(root)]
    try:
        for argv in ([sidecar, "render", "--dir", str(root)], [sidecar, "up", "--dir", str(root)]):
            subprocess.run(argv, check=True, env=env, capture_output=True)
        start = alternate(args.runs, {
            "sidecar up": ([sidecar, "up", "--dir", str(root)], env),
            "docker compose up -d --wait": ([*compose, "up", "-d", "--wait"], env),
        })
        check = alternate(args.runs, {
            "sidecar trust (check only)": ([sidecar, "trust", "--dir", str(root)], env),
            "docker compose config": ([*compose, "config", "--format", "json"], env),
        })
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "1"], env=env, capture_output=True,
                       check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"medians of {args.runs} alternating runs, unchanged running stack:")
    for results in (start, check):
        (ours, mine), (theirs, base) = results.items()
        print(f"  {ours:<28} {mine * 1000:7.0f} ms")
        print(f"  {theirs:<28} {base * 1000:7.0f} ms   ratio {mine / base:.2f}")


if __name__ == "__main__":
    main()
