"""Floods against the gate's decision log: this tree's gate (a budget per client) side by side
with an older gate (one whole line per request) taken from git, in one run, alternating.

    .venv/bin/python bench/gate_logflood.py [--seconds 10] [--rounds 3] [--old REV]

Two floods, each from one client for `--seconds`:

- `refused`: `GET /<15 KB>/<n>` (not an endpoint of the allowlist) pipelined on one
  connection, the answers read as they come (what the agent did in issue 20: 275 MiB in 10 s);
- `execs`: allowed exec creates with a 60 KB argv, on 8 connections at once (each one a real
  exec in the engine, which sets the pace).

Reported per gate and round: requests answered, bytes the decision log grew by, and whether
the lines (with their counts) add up to the requests answered; then the ratio of the medians.
Never a test assertion.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import bench_target, free_port, old_tree, start_gate

from sidecar_gen.gate import audit

OLD_DEFAULT = "16f5867"  # the gate before the log budget (one whole line per request)
PATH_BYTES = 15000
ARGV_BYTES = 60000


def _answers(data: bytes) -> tuple[int, bytes]:
    """Complete answers in `data` (status lines), and what is left of a partial one."""
    count = 0
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        if len(rest) < length:
            break
        data = rest[length:]
        count += 1
    return count, data


def refused(port: int, seconds: float, _container: str) -> int:
    """Pipeline refused requests for `seconds`, then read the answers to all of them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    stop, sent = threading.Event(), [0]

    def send() -> None:
        path = "/" + "a" * PATH_BYTES
        while not stop.is_set():
            batch = b"".join(f"GET {path}/{sent[0] + i} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                             for i in range(16))
            try:
                sock.sendall(batch)
            except OSError:
                return
            sent[0] += 16

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    end = time.monotonic() + seconds
    data, answered = b"", 0
    while sender.is_alive() or answered < sent[0]:
        if time.monotonic() >= end:
            stop.set()  # then read the answers to everything sent
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got, data = _answers(data + chunk)
        answered += got
    sock.close()
    if answered != sent[0]:
        sys.exit(f"sent {sent[0]} requests but read {answered} answers")
    return answered


def execs(port: int, seconds: float, container: str) -> int:
    """Allowed exec creates with a long argv on 8 connections for `seconds`; how many."""
    body = json.dumps({"Cmd": ["sh", "-c", "x" * ARGV_BYTES], "AttachStdout": True}).encode()
    head = (f"POST /v1.41/containers/{container}/exec HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    end, done = time.monotonic() + seconds, [0]
    lock = threading.Lock()

    def one() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        data = b""
        while time.monotonic() < end:
            sock.sendall(head + body)
            got = 0
            while not got:
                data += sock.recv(65536)
                got, data = _answers(data)
            with lock:
                done[0] += 1
        sock.close()

    workers = [threading.Thread(target=one) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done[0]


def one_run(flood: Callable[[int, float, str], int], kind: str, config: Path, tmp: Path, *,
            seconds: float, container: str, command: list[str] | None,
            env: dict[str, str] | None) -> tuple[int, int, int]:
    """(requests answered, bytes logged, requests the log accounts for)."""
    port = free_port()
    log = tmp / f"log-{port}.jsonl"
    proc = start_gate(config, f"tcp://127.0.0.1:{port}", log, command=command, env=env)
    try:
        answered = flood(port, seconds, container)
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    if kind == "refused":
        accounted = sum(d.get("count", 1) for d in lines
                        if d["decision"] == "deny" and d["peer"] != "-")
    else:
        accounted = sum(1 for d in lines if d["reason"] == "exec into a target")
    return answered, log.stat().st_size, accounted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", default=OLD_DEFAULT)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-logflood-"))
    with bench_target("sidecar-bench-logflood") as target, old_tree(args.old) as (argv, env):
        config = tmp / "bridge.yaml"
        config.write_text(json.dumps({"version": "1", "commands": {
            "tool": {"container": target.name, "exec": "sh"}}}))
        for kind, flood in (("refused", refused), ("execs", execs)):
            runs: dict[str, list[tuple[int, int, int]]] = {"now": [], "before": []}
            for _ in range(args.rounds):
                for name, command, environ in (("now", None, None), ("before", argv, env)):
                    runs[name].append(one_run(flood, kind, config, tmp, seconds=args.seconds,
                                              container=target.name, command=command,
                                              env=environ))
            for name, results in runs.items():
                for answered, size, accounted in results:
                    print(f"{kind} {name}: {answered} answered in {args.seconds:.0f} s, log "
                          f"grew {size / 1e6:.2f} MB, the log accounts for {accounted} "
                          f"({'all' if accounted == answered else 'NOT ALL'})")
            now = statistics.median(size for _, size, _ in runs["now"])
            old = statistics.median(size for _, size, _ in runs["before"])
            rate_now = statistics.median(a for a, _, _ in runs["now"])
            rate_old = statistics.median(a for a, _, _ in runs["before"])
            print(f"{kind}: median bytes logged in {args.seconds:.0f} s: now {now / 1e6:.2f} "
                  f"MB, before {old / 1e6:.1f} MB, ratio before/now {old / now:.0f}; "
                  f"requests answered now/before {rate_now / max(rate_old, 1):.2f}")
    print(f"budgets per client: other lines {audit.BUDGET_BURST // 1024} KiB + "
          f"{audit.BUDGET_PER_SECOND // 1024} KiB/s, then counted; actions "
          f"{audit.ACTION_BURST // 1024} KiB + {audit.ACTION_PER_SECOND // 1024} KiB/s, "
          "then cut")


if __name__ == "__main__":
    main()
