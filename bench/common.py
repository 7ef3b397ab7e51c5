"""What the benchmarks share: alternating timed runs, and a busybox target with wrappers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from images import BUSYBOX_IMAGE as IMAGE  # noqa: E402  (the test images' one list of names)

Commands = dict[str, tuple[list[str], dict[str, str]]]


def timed(argv: list[str], env: dict[str, str], stdin: Path | None = None) -> float:
    """Wall time of one run; a failing run ends the benchmark (its figure would be a lie)."""
    with open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        result = subprocess.run(argv, check=False, env=env, stdin=source,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/tmp")
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed


def alternate(runs: int, commands: Commands, stdin: Path | None = None) -> dict[str, float]:
    """Medians of `runs` runs of each command, alternating (order reversed every other round)
    so that machine noise hits every command alike."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        for name in order:
            argv, env = commands[name]
            samples[name].append(timed(argv, env, stdin))
    return {name: statistics.median(values) for name, values in samples.items()}


def write_data(path: Path, mib: int) -> None:
    """MIB MiB of incompressible data, each MiB numbered so a reordering would show."""
    with open(path, "wb") as handle:
        block = os.urandom(1024 * 1024)
        for index in range(mib):
            handle.write(index.to_bytes(8, "big") + block[8:])


@dataclass
class Target:
    """A running busybox container, a bridge.yaml routing `true` and `cat` to it, wrappers."""

    docker: str
    name: str
    tmp: Path
    config: Path
    wrappers: Path
    base_env: dict[str, str]

    def env(self, docker_host: str) -> dict[str, str]:
        """The wrappers' environment for one endpoint."""
        return {**self.base_env, "DOCKER_HOST": docker_host}


@contextlib.contextmanager
def bench_target(prefix: str) -> Iterator[Target]:
    """Start the target container and install the wrappers; remove everything afterwards."""
    docker = shutil.which("docker")
    if docker is None:
        sys.exit("the docker CLI is needed for the benchmark")
    from sidecar_gen.wrappers import install_wrappers

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "run", "-d", "--init", "--name", name,
                    "--label", "dev.claude-sidecar.test=1", IMAGE, "sleep", "36000"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        config = tmp / "bridge.yaml"
        config.write_text(json.dumps({"version": "1", "commands": {
            "true": {"container": name, "exec": "true"},
            "cat": {"container": name, "exec": "cat"},
        }}))
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        install_wrappers(tmp / "bin", config)
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                "XDG_CACHE_HOME": str(tmp / "cache"), "BRIDGE_CONFIG": str(config)}
        yield Target(docker, name, tmp, config, tmp / "bin", base)
    finally:
        subprocess.run([docker, "rm", "-f", name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
