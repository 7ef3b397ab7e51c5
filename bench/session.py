"""Benchmark `sidecar session new` (until the session is ready) and what a session costs in
memory, on the bundled examples, offline, on a real engine.

    .venv/bin/python bench/session.py [--runs 5] [--examples laravel,node-app,go-service]

Each example is copied into a temporary git repository, `sidecar init` + `render` are run (the
test Claude image, firewall on), its services run as busybox stand-ins (the real images need a
registry), and its main stack is started. Then, alternately, run by run:
- session: `sidecar session new bench` (wall time of the command: it returns when the session
  is ready), memory of its containers, `sidecar session rm --force bench`;
- by hand (only where a second copy does not collide: no fixed container name, no published
  port): `git worktree add` + copy `.env` + `docker compose -p <project>-hand up -d --wait` +
  wait for Claude's entrypoint, then `down -v` and `git worktree remove`.
Prints the medians, the ratio session / by hand, and each container's memory (RSS from the
engine's stats: the cgroup's `total_rss`, or `anon` on cgroup v2).
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
BUSYBOX = os.environ.get("SIDECAR_TEST_IMAGE", "sidecar-test/busybox:latest")
IMAGE_VARS = ("PHP_IMAGE", "DB_IMAGE", "NODE_IMAGE", "REDIS_IMAGE", "GO_IMAGE", "POSTGRES_IMAGE")
SIDECAR = str(Path(sys.executable).parent / "sidecar")


def sh(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed ({result.returncode}): "
                 f"{(result.stderr or result.stdout).strip()[-800:]}")
    return result.stdout


def prepare(example: str, base: Path, image: str, env: dict[str, str]) -> Path:
    """A git repository of the example with its stack rendered and committed."""
    from ruamel.yaml import YAML

    root = base / f"bench{example.replace('-', '')}"
    shutil.copytree(REPO / "examples" / example, root, ignore=shutil.ignore_patterns(".sidecar"))
    compose = YAML(typ="safe").load((root / "compose.yaml").read_text())
    lines = ["services:"]
    for name in compose["services"]:
        lines += [f"  {name}:", "    entrypoint: [sh, -c]", '    command: ["exec sleep 36000"]',
                  "    init: true"]
    (root / "compose.override.yaml").write_text("\n".join(lines) + "\n")
    (root / ".env").write_text("DB_ROOT_PASSWORD=bench\nPOSTGRES_PASSWORD=bench\n")
    (root / ".gitignore").write_text(".env\n")
    # init proposes commands from the real images' names, not from the stand-ins.
    sh([SIDECAR, "init"], root, {k: v for k, v in env.items() if k not in IMAGE_VARS})
    yaml = YAML()
    bridge_file = root / ".sidecar" / "bridge.yaml"
    bridge = yaml.load(bridge_file.read_text())
    bridge["sidecar"]["image"] = image
    with bridge_file.open("w") as handle:
        yaml.dump(bridge, handle)
    sh([SIDECAR, "render"], root, env)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    sh([*git, "init", "-q", "-b", "main"], root, env)
    sh([*git, "add", "-A"], root, env)
    sh([*git, "commit", "-qm", "bench"], root, env)
    return root


def wait_entrypoint(client: Any, project: str, timeout: float = 120) -> None:
    """Until the Claude container of `project` is ready (healthy, or its ready line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in client.containers.list(filters={"label": [
                f"com.docker.compose.project={project}", "dev.claude-sidecar.role=claude"]}):
            health = (c.attrs.get("State") or {}).get("Health")
            if (health or {}).get("Status") == "healthy" or (
                    health is None and b"sidecar: ready (" in c.logs()):
                return
        time.sleep(0.1)
    sys.exit(f"{project}: Claude never became ready")


def memory(client: Any, project: str) -> dict[str, tuple[float, float]]:
    """Service -> (RSS, what `docker stats` shows) in MiB, for each container of `project`."""
    out: dict[str, tuple[float, float]] = {}
    for c in client.containers.list(filters={"label": f"com.docker.compose.project={project}"}):
        stats = c.stats(stream=False).get("memory_stats") or {}
        detail = stats.get("stats") or {}
        rss = detail.get("total_rss", detail.get("anon", detail.get("rss", 0)))
        inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
        shown = stats.get("usage", 0) - inactive
        out[c.labels["com.docker.compose.service"]] = (rss / 2**20, shown / 2**20)
    return out


def _memory_line(label: str, samples: list[dict[str, tuple[float, float]]]) -> str:
    services = sorted(samples[0])
    rss = {s: statistics.median(r[s][0] for r in samples if s in r) for s in services}
    shown = {s: statistics.median(r[s][1] for r in samples if s in r) for s in services}
    return (f"  {label} RSS: " + ", ".join(f"{s} {rss[s]:.1f}" for s in services)
            + f"; total {sum(rss.values()):.1f} MiB (docker stats: total "
            f"{sum(shown.values()):.1f} MiB)")


def with_policy(folder: Path) -> list[str]:
    """`-f` arguments for compose in `folder` that give its claude and gate their policy the
    way a user who copies the stack by hand would: the folder's own .sidecar/ (`sidecar up`
    would copy it into a volume instead; both are in place before the containers start)."""
    override = folder.parent / f"{folder.name}.policy.yaml"
    mount = f'["{folder}/.sidecar:/run/sidecar/policy:ro"]'
    override.write_text(f"services:\n  claude:\n    volumes: {mount}\n"
                        f"  sidecar-gate:\n    volumes: {mount}\n")
    return ["-f", str(folder / "compose.yaml"), "-f", str(folder / "compose.override.yaml"),
            "-f", str(override)]


def by_hand(root: Path, env: dict[str, str], client: Any) -> float:
    """git worktree add + .env + compose up --wait + Claude ready; the seconds it took."""
    wt = root.parent / f"{root.name}.hand"
    project = f"{root.name}-hand"
    start = time.perf_counter()
    sh(["git", "worktree", "add", "--quiet", "-b", "hand", str(wt)], root, env)
    shutil.copy2(root / ".env", wt / ".env")
    sh(["docker", "compose", "-p", project, *with_policy(wt), "up", "-d", "--wait"], wt, env)
    wait_entrypoint(client, project)
    elapsed = time.perf_counter() - start
    sh(["docker", "compose", "-p", project, *with_policy(wt), "down", "-v", "-t", "0"], wt,
       env)
    sh(["git", "worktree", "remove", "--force", str(wt)], root, env)
    sh(["git", "branch", "-D", "hand"], root, env)
    return elapsed


def session(root: Path, env: dict[str, str], client: Any,
            rss: list[dict[str, tuple[float, float]]]) -> float:
    """`sidecar session new` until it returns (ready); the seconds it took."""
    start = time.perf_counter()
    sh([SIDECAR, "session", "new", "bench"], root, env)
    elapsed = time.perf_counter() - start
    time.sleep(2)  # let start-up work settle before sampling memory
    rss.append(memory(client, f"{root.name}-bench"))
    sh([SIDECAR, "session", "rm", "--force", "bench"], root, env)
    sh(["git", "branch", "-D", "sidecar/bench"], root, env)
    return elapsed


def bench_example(example: str, runs: int, base: Path, image: str, *, env: dict[str, str],
                  client: Any) -> None:
    root = prepare(example, base, image, env)
    # The main stack as users start it: `sidecar up` approves it (sessions start only from an
    # approved project) and fills its policy volume.
    sh([SIDECAR, "up"], root, env)
    wait_entrypoint(client, root.name)
    compose = (root / "compose.yaml").read_text()
    hand_ok = "container_name" not in compose and "ports:" not in compose
    times: dict[str, list[float]] = {"session": [], "by hand": []}
    rss: list[dict[str, tuple[float, float]]] = []
    try:
        for index in range(runs):
            order = ["session", "by hand"] if index % 2 == 0 else ["by hand", "session"]
            for kind in order:
                if kind == "session":
                    times[kind].append(session(root, env, client, rss))
                elif hand_ok:
                    times[kind].append(by_hand(root, env, client))
        main_rss = memory(client, root.name)
    finally:
        subprocess.run(["docker", "compose", "down", "-v", "-t", "0"],
                       cwd=root, env=env,
                       capture_output=True, check=False)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    line = f"{example}: session ready {med['session']:.2f} s " \
           f"(runs {', '.join(f'{t:.2f}' for t in times['session'])})"
    if "by hand" in med:
        line += f"; by hand {med['by hand']:.2f} s; session / by hand " \
                f"{med['session'] / med['by hand']:.2f}"
    else:
        line += "; no by-hand copy (a fixed container name or a published port collides)"
    print(line)
    print(_memory_line(f"session (median of {len(rss)})", rss))
    print(_memory_line("main stack", [main_rss]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--examples", default="laravel,node-app,go-service")
    args = parser.parse_args()
    import docker
    from image.build import ensure_claude_image

    client = docker.from_env()
    image = ensure_claude_image()
    base = Path(tempfile.mkdtemp(prefix="sidecar-bench-session-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update({v: BUSYBOX for v in IMAGE_VARS})
    env.update({"XDG_STATE_HOME": str(base / "state"), "PUID": str(os.getuid()),
                "PGID": str(os.getgid())})
    print(json.dumps({"runs": args.runs, "image": image, "engine": client.version()["Version"]}))
    try:
        for example in args.examples.split(","):
            bench_example(example, args.runs, base, image, env=env, client=client)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
