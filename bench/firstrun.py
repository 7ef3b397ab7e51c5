"""From nothing to Claude Code answering, against `docker compose up -d --wait` of the same stack.

The project is the bundled example `examples/go-service` with no `.sidecar/`: its services run
on the local busybox image (its `*_IMAGE` variables), kept alive by the user's own
`compose.override.yaml`, which also runs the model API's scripted stand-in
(`tests/broker/standin.py`, answering every message with one line) as a service `model` of the
project, on the Claude image's Python: the egress firewall lets Claude reach the project's own
network, and Claude Code is pointed at it with `--settings`. The Claude image is present
(`--image`, else the local test image with Claude Code, built first when missing).

Each round, on a fresh copy of the example (the two alternate in every round):

- first run: `sidecar up --yes` (init, render, the plan, approval, the start) then
  `sidecar claude -p ...` until Claude Code prints the stand-in's answer;
- baseline: `docker compose up -d --wait` of that same, now rendered, stack after `docker
  compose down` (its volumes kept: the policy volume `sidecar up` filled stays).

    .venv/bin/python bench/firstrun.py [--runs 3] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import IMAGE, REPO

ANSWER = "pong from the stand-in"
STANDIN = ("import sys, time; sys.path.insert(0, '/standin'); "
           "from standin import StandIn, text_reply; "
           f"StandIn(lambda record: text_reply({ANSWER!r}), host='0.0.0.0', port=8080); "
           "time.sleep(10 ** 7)")
OVERRIDE = """\
services:
  api:
    entrypoint: [sh, -c]
    command: ["exec sleep 36000"]
    container_name: {project}-api
    init: true
  postgres:
    entrypoint: [sh, -c]
    command: ["exec sleep 36000"]
    init: true
  model:
    image: {image}
    entrypoint: [/opt/sidecar/bin/python, -c, {standin}]
    user: "65534:65534"
    volumes: ["{standins}:/standin:ro"]
"""
SETTINGS = {"env": {"ANTHROPIC_BASE_URL": "http://model:8080",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}}


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600, check=False)


def _must(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}): {result.stdout[-2000:]}"
                 f"{result.stderr[-2000:]}")


def one_round(tmp: Path, image: str, sidecar: str) -> tuple[float, float, float]:
    """(first run up, first run up + answer, baseline up) in seconds, on a fresh copy."""
    project = f"benchfirst-{uuid.uuid4().hex[:8]}"
    root = tmp / project
    shutil.copytree(REPO / "examples" / "go-service", root,
                    ignore=shutil.ignore_patterns(".sidecar"))
    (root / "compose.override.yaml").write_text(OVERRIDE.format(
        project=project, image=image, standin=json.dumps(STANDIN),
        standins=REPO / "tests" / "broker"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "SIDECAR_"))}
    env.update({"GO_IMAGE": IMAGE, "POSTGRES_IMAGE": IMAGE, "SIDECAR_IMAGE": image,
                "COMPOSE_PROJECT_NAME": project, "XDG_STATE_HOME": str(tmp / "state"),
                "ANTHROPIC_API_KEY": "sk-ant-stand-in"})
    compose = ["docker", "compose"]
    try:
        start = time.perf_counter()
        _must(_run([sidecar, "up", "--yes"], env, root), "sidecar up (first run)")
        started = time.perf_counter() - start
        ask = [sidecar, "claude", "-p", "say pong", "--settings", json.dumps(SETTINGS)]
        while True:  # the stand-in's Python may still be starting: ask until it answers
            answer = _run(ask, env, root)
            if ANSWER in answer.stdout:
                break
            if time.perf_counter() - start > 300:
                sys.exit(f"sidecar claude never answered ({answer.returncode}): "
                         f"{answer.stdout[-2000:]}{answer.stderr[-2000:]}")
            time.sleep(0.2)
        answered = time.perf_counter() - start
        _must(_run([*compose, "down", "-t", "1"], env, root), "docker compose down")
        start = time.perf_counter()
        _must(_run([*compose, "up", "-d", "--wait"], env, root), "docker compose up")
        baseline = time.perf_counter() - start
    finally:
        _run([*compose, "down", "-v", "--remove-orphans", "-t", "1"], env, root)
    return started, answered, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", help="a Claude image with Claude Code [default: the local "
                        "test image, sidecar-test/claude:npm-*, built when missing]")
    args = parser.parse_args()
    image = args.image
    if not image:
        from image.build import ensure_claude_image

        image = ensure_claude_image("npm")
    sidecar = str(Path(sys.executable).parent / "sidecar")
    tmp = Path(tempfile.mkdtemp(prefix="bench-firstrun-"))
    rounds = []
    try:
        for _ in range(args.runs):
            rounds.append(one_round(tmp, image, sidecar))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    up, answered, base = (statistics.median(r[i] for r in rounds) for i in range(3))
    print(f"medians of {args.runs} rounds, each on a fresh copy of examples/go-service "
          f"(image {image}):")
    print(f"  first run: sidecar up --yes                 {up:6.1f} s   ratio {up / base:.2f}")
    print(f"  first run to Claude Code's first answer     {answered:6.1f} s   "
          f"ratio {answered / base:.2f}")
    print(f"  docker compose up -d --wait (same stack)    {base:6.1f} s")


if __name__ == "__main__":
    main()
