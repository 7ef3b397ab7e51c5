"""Benchmark the Docker API gate against the direct engine socket, side by side in one run.

    .venv/bin/python bench/gate.py [--runs 20] [--mib 256] [--concurrent 50]

Starts two gates (`sidecar proxy`) on a bench bridge.yaml, one on TCP as deployed and one on a
unix socket, and prints medians and ratios for:
- latency of a dispatch (`true` through the dispatcher) via the gate vs the direct socket
  (goal <= 1.05); the unix-socket gate shows the gate's own share apart from the dispatcher's
  TCP client path;
- throughput of MIB MiB through `cat` (stdin to stdout) via the gate vs direct (goal >= 0.9);
- the gate's memory (RSS) idle and at CONCURRENT concurrent execs (dispatches of a `cat` that
  holds its stream open until stdin closes).
The two endpoints alternate run by run so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(argv: list[str], env: dict[str, str], stdin: Path | None = None) -> float:
    with open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        result = subprocess.run(argv, check=False, env=env, stdin=source,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/tmp")
        elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return elapsed


def alternate(runs: int, commands: dict[str, tuple[list[str], dict[str, str]]],
              stdin: Path | None = None) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        for name in order:
            argv, env = commands[name]
            samples[name].append(timed(argv, env, stdin))
    return {name: statistics.median(values) for name, values in samples.items()}


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _probe(listen: str) -> None:
    if listen.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.2)
            sock.connect(listen[len("unix://"):])
    else:
        host, _, port = listen[len("tcp://"):].rpartition(":")
        socket.create_connection((host, int(port)), timeout=0.2).close()


def start_gate(config: Path, listen: str, log: Path) -> subprocess.Popen[bytes]:
    sidecar = Path(sys.executable).parent / "sidecar"
    argv = [str(sidecar), "proxy", "--listen", listen, "--config", str(config),
            "--log", str(log)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            _probe(listen)
            return proc
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                sys.exit(f"the gate did not start: {err}")
            time.sleep(0.05)
    sys.exit("the gate did not start within 15 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--concurrent", type=int, default=50)
    options = parser.parse_args()
    docker = shutil.which("docker")
    if docker is None:
        sys.exit("the docker CLI is needed to set up the bench container")

    from sidecar_gen.wrappers import install_wrappers

    name = f"sidecar-gbench-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "run", "-d", "--init", "--name", name,
                    "--label", "dev.claude-sidecar.test=1", IMAGE, "sleep", "36000"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-gbench-"))
    gates: list[subprocess.Popen[bytes]] = []
    try:
        config = tmp / "bridge.yaml"
        config.write_text(json.dumps({"version": "1", "commands": {
            "true": {"container": name, "exec": "true"},
            "cat": {"container": name, "exec": "cat"},
        }}))
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        install_wrappers(tmp / "bin", config)
        port = free_port()
        gate = start_gate(config, f"tcp://127.0.0.1:{port}", tmp / "gate.log")
        gates.append(gate)
        gates.append(start_gate(config, f"unix://{tmp}/gate.sock", tmp / "gate-unix.log"))
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                "XDG_CACHE_HOME": str(tmp / "cache"), "BRIDGE_CONFIG": str(config)}
        direct = {**base, "DOCKER_HOST": "unix:///var/run/docker.sock"}
        gated = {**base, "DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        gated_unix = {**base, "DOCKER_HOST": f"unix://{tmp}/gate.sock"}
        wrappers = tmp / "bin"
        data = tmp / "data.bin"
        with open(data, "wb") as handle:
            block = os.urandom(1024 * 1024)
            for index in range(options.mib):
                handle.write(index.to_bytes(8, "big") + block[8:])

        print(f"machine: {os.cpu_count()} CPUs; {options.runs} runs each, alternating; "
              f"container {name}; gate pid {gate.pid}")
        latency = {
            "direct socket": ([str(wrappers / "true")], direct),
            "via gate": ([str(wrappers / "true")], gated),
            "via gate (unix)": ([str(wrappers / "true")], gated_unix),
        }
        alternate(3, latency)  # warm-up: caches, the daemon's first exec
        lat = alternate(options.runs, latency)
        for label, value in lat.items():
            print(f"latency  dispatch `true` {label:<16} median {value * 1000:7.1f} ms")
        print(f"latency  ratio via gate / direct: {lat['via gate'] / lat['direct socket']:.3f}"
              "  (goal <= 1.05)")
        print(f"latency  ratio via gate on a unix socket / direct: "
              f"{lat['via gate (unix)'] / lat['direct socket']:.3f}  (the gate's own share)")

        transfer = {
            "direct socket": ([str(wrappers / "cat")], direct),
            "via gate": ([str(wrappers / "cat")], gated),
        }
        thr = alternate(max(5, options.runs // 2), transfer, stdin=data)
        for label, value in thr.items():
            print(f"cat {options.mib} MiB {label:<14} median {value:6.2f} s "
                  f"({options.mib / value:6.0f} MiB/s)")
        print(f"throughput ratio via gate / direct: "
              f"{thr['direct socket'] / thr['via gate']:.3f}  (goal >= 0.9)")

        idle_rss, _ = rss_kib(gate.pid)
        procs = [subprocess.Popen([str(wrappers / "cat")], env=gated, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/tmp")
                 for _ in range(options.concurrent)]
        # Each exec echoes one line back: once all have answered, all streams are open.
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"hello\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline() != b"hello\n":
                sys.exit("a concurrent exec did not echo its line")
        busy_rss, _ = rss_kib(gate.pid)
        threads = len(os.listdir(f"/proc/{gate.pid}/task"))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        codes = [proc.wait(timeout=60) for proc in procs]
        _, peak = rss_kib(gate.pid)
        print(f"gate RSS idle {idle_rss / 1024:.1f} MiB; with {options.concurrent} concurrent "
              f"execs streaming {busy_rss / 1024:.1f} MiB ({threads} threads); "
              f"peak over the whole run {peak / 1024:.1f} MiB; "
              f"exit codes all 0: {all(code == 0 for code in codes)}")
    finally:
        for gate in gates:
            gate.terminate()
            try:
                gate.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gate.kill()
        subprocess.run([docker, "rm", "-f", name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
