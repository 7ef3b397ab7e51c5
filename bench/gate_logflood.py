"""A flood of refused requests against the gate's decision log: this tree's gate (a budget per
client, counts beyond it) side by side with an older gate (one line per request) taken from
git, in one run, alternating.

    .venv/bin/python bench/gate_logflood.py [--seconds 10] [--rounds 3] [--old REV]

Each flood is one client pipelining `GET /<15 KB>/<n>` (refused: not an endpoint of the
allowlist) on one connection for `--seconds`, reading the answers as they come (what the
agent did in issue 20: 275 MiB in 10 s). Reported per gate: requests answered, bytes the
decision log grew by, and for this tree whether the counts in its lines add up to the
requests answered; then the ratio of the medians. Never a test assertion.
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
from pathlib import Path

from common import free_port, old_tree, start_gate

from sidecar_gen.gate import audit

OLD_DEFAULT = "16f5867"  # the gate before the log budget (one line per request, whole)
PATH_BYTES = 15000


def flood(port: int, seconds: float) -> int:
    """Pipeline refused requests for `seconds`, then read the answers to all of them; their
    number."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    stop = threading.Event()
    sent = [0]

    def send() -> None:
        body = "/" + "a" * PATH_BYTES
        with_errors = False
        while not stop.is_set() and not with_errors:
            batch = b"".join(f"GET {body}/{sent[0] + i} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                             for i in range(16))
            try:
                sock.sendall(batch)
            except OSError:
                with_errors = True
            sent[0] += 16

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    end = time.monotonic() + seconds
    data, answers, mark = b"", 0, b"HTTP/1.1 403 "
    while sender.is_alive() or answers < sent[0]:
        if time.monotonic() >= end:
            stop.set()  # then read the answers to everything sent
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
        answers += data.count(mark)
        if mark in data:
            data = data[data.rfind(mark) + 1:]
    sock.close()
    sender.join(5)
    if answers != sent[0]:
        sys.exit(f"sent {sent[0]} requests but read {answers} answers")
    return answers


def one(config: Path, tmp: Path, seconds: float, command: list[str] | None,
        env: dict[str, str] | None) -> tuple[int, int, int | None]:
    """(answers, bytes logged, sum of the counts in the log or None for the old format)."""
    port = free_port()
    log = tmp / f"log-{port}.jsonl"
    proc = start_gate(config, f"tcp://127.0.0.1:{port}", log, command=command, env=env)
    try:
        answers = flood(port, seconds)
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    refused = [d for d in lines if d["decision"] == "deny" and d["peer"] != "-"]
    counted = sum(d.get("count", 1) for d in refused)
    return answers, log.stat().st_size, counted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", default=OLD_DEFAULT)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-logflood-"))
    config = tmp / "bridge.yaml"
    config.write_text(json.dumps({"version": "1", "commands": {
        "tool": {"container": "nothing-here", "exec": "sh"}}}))
    results: dict[str, list[tuple[int, int, int | None]]] = {"now": [], "old": []}
    with old_tree(args.old) as (old_argv, old_env):
        for _ in range(args.rounds):
            results["now"].append(one(config, tmp, args.seconds, None, None))
            results["old"].append(one(config, tmp, args.seconds, old_argv, old_env))
    for name, runs in results.items():
        for answers, size, counted in runs:
            print(f"{name}: {answers} refused requests answered in {args.seconds:.0f} s, "
                  f"log grew {size / 1024 / 1024:.2f} MiB, counts in the log add up to "
                  f"{counted} ({'equal' if counted == answers else 'DIFFERENT'})")
    now = statistics.median(size for _, size, _ in results["now"])
    old = statistics.median(size for _, size, _ in results["old"])
    rate_now = statistics.median(a for a, _, _ in results["now"])
    rate_old = statistics.median(a for a, _, _ in results["old"])
    print(f"median bytes logged in {args.seconds:.0f} s: now {now / 1024:.0f} KiB, "
          f"before {old / 1024 / 1024:.1f} MiB: ratio before/now {old / now:.0f}")
    print(f"median requests answered: now {rate_now}, before {rate_old} "
          f"(ratio now/before {rate_now / max(rate_old, 1):.2f})")
    steady = audit.BUDGET_PER_SECOND * 3600 / 1e6
    print(f"an hour of such a flood: before about {old * 3600 / args.seconds / 1e9:.0f} GB; now "
          f"the burst ({audit.BUDGET_BURST // 1024} KiB), then at most {steady:.1f} MB of lines "
          f"plus one count line per reason every {audit.SUMMARY_SECONDS:.0f} s")
    sys.exit(0)


if __name__ == "__main__":
    main()
