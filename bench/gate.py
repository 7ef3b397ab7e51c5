"""Benchmark the Docker API gate against the direct engine socket, side by side in one run.

    .venv/bin/python bench/gate.py [--runs 20] [--mib 256] [--concurrent 50] [--old REV]

The target is the one member of a compose service, routed to by the service name, and the two
gates (`sidecar proxy`, one on TCP as deployed, one on a unix socket) serve that compose project
(`--project`), as a gate in a stack serves its own: the dispatcher lists the service's members
through the gate and execs by full id. Prints medians and ratios for:
- latency of a dispatch (`true` through the dispatcher) via the gate vs the direct socket
  (goal <= 1.05); the unix-socket gate shows the gate's own share apart from the dispatcher's
  TCP client path;
- the fresh check: a decision takes a new listing of the project's containers, except for a
  compose-service member known by full id (labels never change: that grant cannot go stale);
  the median of that engine call, and its share of a direct dispatch for the one listing a
  service-routed dispatch makes (its list) and the three a name-routed one makes (exec create,
  start and inspect: a name can move to another container at any time);
- throughput of MIB MiB through `cat` (stdin to stdout) via the gate vs direct (goal >= 0.9);
- the gate's memory (RSS) idle and at CONCURRENT concurrent execs (dispatches of a `cat` that
  holds its stream open until stdin closes).
With `--old REV`, the gate of an older revision (extracted with `git archive`) runs as a
third endpoint in the same alternating latency runs. The endpoints alternate run by run so
machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time

from common import (
    Target,
    alternate,
    bench_target,
    free_port,
    old_tree,
    rss_kib,
    start_gate,
    write_data,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--old", help="also measure the gate of this git revision")
    options = parser.parse_args()
    gates: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(bench_target("sidecar-gbench", compose=True))
        try:
            tmp = target.tmp
            port = free_port()
            scope = ("--project", target.name)
            gate = start_gate(target.config, f"tcp://127.0.0.1:{port}", tmp / "gate.log", scope)
            gates.append(gate)
            gates.append(start_gate(target.config, f"unix://{tmp}/gate.sock",
                                    tmp / "gate-unix.log", scope))
            old_port = None
            if options.old:
                argv, env = stack.enter_context(old_tree(options.old))
                old_port = free_port()
                gates.append(start_gate(target.config, f"tcp://127.0.0.1:{old_port}",
                                        tmp / "gate-old.log", command=argv, env=env))
            report(options, target, gate, port, old_port)
        finally:
            for running in gates:
                running.terminate()
                try:
                    running.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    running.kill()
    return 0


def report(options: argparse.Namespace, target: Target, gate: subprocess.Popen[bytes],
           port: int, old_port: int | None) -> None:
    wrappers = target.wrappers
    direct = target.env("unix:///var/run/docker.sock")
    gated = target.env(f"tcp://127.0.0.1:{port}")
    gated_unix = target.env(f"unix://{target.tmp}/gate.sock")
    data = target.tmp / "data.bin"
    write_data(data, options.mib)
    print(f"machine: {os.cpu_count()} CPUs; {options.runs} runs each, alternating; "
          f"container {target.name}; gate pid {gate.pid}")
    latency = {
        "direct socket": ([str(wrappers / "true")], direct),
        "via gate": ([str(wrappers / "true")], gated),
        "via gate (unix)": ([str(wrappers / "true")], gated_unix),
    }
    if old_port is not None:
        latency[f"via {options.old}"] = ([str(wrappers / "true")],
                                         target.env(f"tcp://127.0.0.1:{old_port}"))
    alternate(3, latency)  # warm-up: caches, the daemon's first exec
    lat = alternate(options.runs, latency)
    for label, value in lat.items():
        print(f"latency  dispatch `true` {label:<16} median {value * 1000:7.1f} ms")
    print(f"latency  ratio via gate / direct: {lat['via gate'] / lat['direct socket']:.3f}"
          "  (goal <= 1.05)")
    print(f"latency  ratio via gate on a unix socket / direct: "
          f"{lat['via gate (unix)'] / lat['direct socket']:.3f}  (the gate's own share)")
    if old_port is not None:
        print(f"latency  ratio via the gate of {options.old} / direct: "
              f"{lat[f'via {options.old}'] / lat['direct socket']:.3f}")
    check = fresh_check(target.name, options.runs * 10)
    share = check / lat["direct socket"] * 100
    print(f"fresh check: the project's container listing, median {check * 1000:.2f} ms: "
          f"{share:.1f}% of a direct dispatch; service-routed dispatch 1 listing, "
          f"name-routed 3 ({3 * share:.1f}%)")

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


def fresh_check(project: str, runs: int) -> float:
    """Median time of the engine call each gate decision makes (the gate's own code path)."""
    import statistics

    from sidecar_gen.gate.engine import Engine

    engine = Engine("unix:///var/run/docker.sock")
    try:
        engine.listing(project)  # connect once, as the gate's pool does
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            engine.listing(project)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)
    finally:
        engine.close()


if __name__ == "__main__":
    raise SystemExit(main())
