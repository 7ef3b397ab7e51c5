"""Benchmark the dispatcher against the docker CLI, side by side in one run.

    .venv/bin/python bench/dispatch.py [--runs 20] [--mib 256] [--gate tcp://127.0.0.1:2375]

Prints medians and ratios (dispatcher / docker CLI) for:
- latency of `true` (goal <= 1.0), also through a Docker API gate when --gate is given;
- throughput of MIB MiB through `cat`, stdin to stdout (ratio of rates, goal >= 1.0);
- peak RSS of the dispatcher and of the docker CLI during that transfer.
The two commands alternate run by run so machine noise hits both alike.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
IMAGE = os.environ.get("SIDECAR_TEST_IMAGE", "sidecar-test/busybox:latest")
MEASURE = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_pid, status, usage = os.wait4(pid, 0)\n"
    "os.write(2, b'MAXRSS=%d' % usage.ru_maxrss)\n"
)


def timed(argv: list[str], env: dict[str, str], stdin: Path | None = None) -> float:
    with open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        result = subprocess.run(argv, check=False, env=env, stdin=source, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd="/tmp")
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed


def peak_rss_kib(argv: list[str], env: dict[str, str], stdin: Path) -> int:
    with open(stdin, "rb") as source:
        result = subprocess.run([sys.executable, "-I", "-S", "-c", MEASURE, *argv], check=False,
                                env=env,
                                stdin=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd="/tmp")
    return int(result.stderr.decode().rsplit("MAXRSS=", 1)[1])


def alternate(runs: int, commands: dict[str, tuple[list[str], dict[str, str]]],
              stdin: Path | None = None) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        for name in order:
            argv, env = commands[name]
            samples[name].append(timed(argv, env, stdin))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--gate", help="DOCKER_HOST of a running gate, e.g. tcp://127.0.0.1:2375")
    parser.add_argument("--config-out", help="write the bench bridge.yaml here (for a gate)")
    options = parser.parse_args()
    docker = shutil.which("docker")
    if docker is None:
        sys.exit("the docker CLI is needed for the comparison")

    from sidecar_gen.wrappers import install_wrappers

    name = f"sidecar-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "run", "-d", "--init", "--name", name,
                    "--label", "dev.claude-sidecar.test=1", IMAGE, "sleep", "36000"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    try:
        config = Path(options.config_out) if options.config_out else tmp / "bridge.yaml"
        config.write_text(json.dumps({"version": "1", "commands": {
            "true": {"container": name, "exec": "true"},
            "cat": {"container": name, "exec": "cat"},
        }}))
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        install_wrappers(tmp / "bin", config)
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                "XDG_CACHE_HOME": str(tmp / "cache"), "BRIDGE_CONFIG": str(config)}
        direct = {**base, "DOCKER_HOST": "unix:///var/run/docker.sock"}
        wrappers = tmp / "bin"
        data = tmp / "data.bin"
        with open(data, "wb") as handle:
            block = os.urandom(1024 * 1024)
            for index in range(options.mib):
                handle.write(index.to_bytes(8, "big") + block[8:])

        print(f"machine: {os.cpu_count()} CPUs; {options.runs} runs each, alternating; "
              f"container {name}")
        latency = {
            "dispatcher": ([str(wrappers / "true")], direct),
            "docker exec": ([docker, "exec", name, "true"], direct),
        }
        if options.gate:
            latency["dispatcher via gate"] = ([str(wrappers / "true")],
                                              {**base, "DOCKER_HOST": options.gate})
        # Warm-up: caches, page cache, the daemon's first exec.
        alternate(2, latency)
        lat = alternate(options.runs, latency)
        for label, value in lat.items():
            print(f"latency  {label:<22} median {value * 1000:7.1f} ms")
        print(f"latency  ratio dispatcher/docker exec: "
              f"{lat['dispatcher'] / lat['docker exec']:.2f}  (goal <= 1.0)")
        if options.gate:
            print(f"latency  ratio dispatcher via gate/docker exec: "
                  f"{lat['dispatcher via gate'] / lat['docker exec']:.2f}")
            print(f"latency  ratio dispatcher via gate/dispatcher direct: "
                  f"{lat['dispatcher via gate'] / lat['dispatcher']:.2f}")

        transfer = {
            "dispatcher": ([str(wrappers / "cat")], direct),
            "docker exec -i": ([docker, "exec", "-i", name, "cat"], direct),
        }
        if options.gate:
            transfer["dispatcher via gate"] = ([str(wrappers / "cat")],
                                               {**base, "DOCKER_HOST": options.gate})
        thr = alternate(options.runs, transfer, stdin=data)
        for label, value in thr.items():
            print(f"cat {options.mib} MiB {label:<20} median {value:6.2f} s "
                  f"({options.mib / value:6.0f} MiB/s)")
        print(f"throughput ratio dispatcher/docker exec -i: "
              f"{thr['docker exec -i'] / thr['dispatcher']:.2f}  (goal >= 1.0)")
        if options.gate:
            print(f"throughput ratio dispatcher via gate/docker exec -i: "
                  f"{thr['docker exec -i'] / thr['dispatcher via gate']:.2f}")
        rss_disp = peak_rss_kib([str(wrappers / "cat")], direct, data)
        rss_cli = peak_rss_kib([docker, "exec", "-i", name, "cat"], direct, data)
        print(f"peak RSS during the transfer: dispatcher {rss_disp / 1024:.1f} MiB, "
              f"docker CLI {rss_cli / 1024:.1f} MiB")
    finally:
        subprocess.run([docker, "rm", "-f", name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
