"""A flood of half-sent requests against the gate: this tree's event loop, side by side with an
older gate (a thread per connection) taken from git, in one run.

    .venv/bin/python bench/gate_flood.py [--connections 2000 5000] [--old REV]

For each gate and each count: open N connections that each send half a request head and stop,
then report the gate's RSS and threads while they are held, how many were turned away (503),
and, after all of them close at once, how long the next routed command takes (median of a few
floods). `--old` (default: the first commit of the gate, before the event loop) is extracted
with `git archive` into a temporary directory and run from there. Never a test assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import Target, bench_target, free_port, old_tree, probe, rss_kib

OLD_DEFAULT = "bdde41d"  # the gate as it was before the event loop (thread per connection)


def start(argv: list[str], env: dict[str, str], listen: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            probe(listen)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"{argv} did not start")


def routed(wrapper: Path, env: dict[str, str]) -> float:
    start_at = time.perf_counter()
    result = subprocess.run([str(wrapper)], check=False, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd="/tmp", timeout=300)
    if result.returncode != 0:
        sys.exit(f"the routed command failed: {result.stderr.decode().strip()}")
    return time.perf_counter() - start_at


def flood(port: int, count: int, pid: int) -> tuple[int, int, int, list[socket.socket]]:
    """(RSS KiB while held, threads, connections answered 503, the sockets)."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        clients.append(sock)
    time.sleep(1.0)
    busy = 0
    for sock in clients:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, ConnectionError):
            if sock.recv(64).startswith(b"HTTP/1.1 503"):
                busy += 1
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return rss_kib(pid)[0], threads, busy, clients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", default=OLD_DEFAULT, help="git revision of the other gate")
    options = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(options.connections) + 256
    if hard < need:
        sys.exit(f"RLIMIT_NOFILE {hard} is below {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    with old_tree(options.old) as (old_argv, old_env), \
            bench_target("sidecar-flood", compose=True) as target:
        sidecar = Path(sys.executable).parent / "sidecar"
        variants = {
            "event loop (this tree)": ([str(sidecar)], dict(os.environ),
                                       ["--project", target.name]),
            f"thread per connection ({options.old})": (old_argv, old_env, []),
        }
        print(f"machine: {os.cpu_count()} CPUs; {options.rounds} floods per count; "
              "half-sent request heads on loopback TCP")
        for label, (argv, env, extra) in variants.items():
            for count in options.connections:
                measure(label, argv, env, extra, target=target, count=count,
                        rounds=options.rounds)
    return 0


def measure(label: str, argv: list[str], env: dict[str, str], extra: list[str], *,
            target: Target, count: int, rounds: int) -> None:
    port = free_port()
    listen = f"tcp://127.0.0.1:{port}"
    proc = start([*argv, "proxy", "--listen", listen, "--config", str(target.config),
                  "--log", os.devnull, *extra], env, listen)
    wrapper, denv = target.wrappers / "true", target.env(listen)
    try:
        routed(wrapper, denv)
        idle = rss_kib(proc.pid)[0]
        quiet = statistics.median(routed(wrapper, denv) for _ in range(5))
        held, threads, busy, after = [], [], [], []
        for _ in range(rounds):
            rss, nthreads, refused, clients = flood(port, count, proc.pid)
            held.append(rss)
            threads.append(nthreads)
            busy.append(refused)
            for sock in clients:
                sock.close()
            after.append(routed(wrapper, denv))
        print(f"{label:<36} {count:>5} conns: RSS idle {idle / 1024:6.1f} MiB, held "
              f"{max(held) / 1024:6.1f} MiB, threads {max(threads):>5}, 503 {min(busy):>5}; "
              f"next command {statistics.median(after):6.3f} s (quiet {quiet:.3f} s); "
              f"RSS after {rss_kib(proc.pid)[0] / 1024:6.1f} MiB")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
