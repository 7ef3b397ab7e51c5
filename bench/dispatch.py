"""Benchmark the dispatcher against the docker CLI, side by side in one run.

    .venv/bin/python bench/dispatch.py [--runs 20] [--mib 256] [--gate tcp://127.0.0.1:2375]
                                       [--baseline DIR]

Prints medians and ratios (dispatcher / docker CLI) for:
- latency of `true` (goal <= 1.0), also through a Docker API gate when --gate is given, and of
  the dispatcher of another checkout when --baseline DIR is given (DIR holds its sidecar_gen/,
  e.g. `git worktree add` or `git archive` of the commit before a change);
- latency of a command killed by SIGKILL (exit 137) against one that exits 1 (goal: 1.0, a
  137 costs no more than any other exit code), for both dispatchers;
- throughput of MIB MiB through `cat`, stdin to stdout (ratio of rates, goal >= 1.0);
- peak RSS of the dispatcher and of the docker CLI during that transfer;
- the CPU time (user + system) of each client per `true`, which load hardly changes.
The commands alternate run by run so machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import alternate, bench_target, install_baseline, write_data

MEASURE = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_pid, status, usage = os.wait4(pid, 0)\n"
    "os.write(2, b'MAXRSS=%d' % usage.ru_maxrss)\n"
)


def peak_rss_kib(argv: list[str], env: dict[str, str], stdin: Path) -> int:
    with open(stdin, "rb") as source:
        result = subprocess.run([sys.executable, "-I", "-S", "-c", MEASURE, *argv], check=False,
                                env=env,
                                stdin=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd="/tmp")
    return int(result.stderr.decode().rsplit("MAXRSS=", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--gate", help="DOCKER_HOST of a running gate, e.g. tcp://127.0.0.1:2375")
    parser.add_argument("--config-out", help="write the bench bridge.yaml here (for a gate)")
    parser.add_argument("--baseline", type=Path,
                        help="a checkout whose dispatcher to time side by side (before/after)")
    options = parser.parse_args()
    with bench_target("sidecar-bench") as target:
        if options.config_out:
            Path(options.config_out).write_text(target.config.read_text())
        docker, name, wrappers = target.docker, target.name, target.wrappers
        direct = target.env("unix:///var/run/docker.sock")
        data = target.tmp / "data.bin"
        write_data(data, options.mib)

        print(f"machine: {os.cpu_count()} CPUs; {options.runs} runs each, alternating; "
              f"container {name}")
        latency = {
            "dispatcher": ([str(wrappers / "true")], direct),
            "docker exec": ([docker, "exec", name, "true"], direct),
        }
        if options.gate:
            latency["dispatcher via gate"] = ([str(wrappers / "true")],
                                              target.env(options.gate))
        base = target.tmp / "baseline-bin"
        base_env = {**direct, "XDG_CACHE_HOME": str(target.tmp / "baseline-cache")}
        if options.baseline:
            install_baseline(base, options.baseline, target.config)
            latency["baseline dispatcher"] = ([str(base / "true")], base_env)
        # Warm-up: caches, page cache, the daemon's first exec.
        alternate(2, latency)
        cpu: dict[str, float] = {}
        lat = alternate(options.runs, latency, cpu=cpu)
        for label, value in lat.items():
            print(f"latency  {label:<22} median {value * 1000:7.1f} ms"
                  f"  (CPU {cpu[label] * 1000:5.1f} ms)")
        print(f"latency  ratio dispatcher/docker exec: "
              f"{lat['dispatcher'] / lat['docker exec']:.2f}  (goal <= 1.0)")
        if options.baseline:
            print(f"latency  ratio baseline dispatcher/docker exec: "
                  f"{lat['baseline dispatcher'] / lat['docker exec']:.2f}")

        codes = {
            "dispatcher exit 1": ([str(wrappers / "exit1")], direct),
            "dispatcher exit 137": ([str(wrappers / "killed")], direct),
        }
        if options.baseline:
            codes["baseline exit 1"] = ([str(base / "exit1")], base_env)
            codes["baseline exit 137"] = ([str(base / "killed")], base_env)
        expect = {label: 137 if label.endswith("137") else 1 for label in codes}
        alternate(1, codes, expect=expect)
        exits = alternate(options.runs, codes, expect=expect)
        for label, value in exits.items():
            print(f"latency  {label:<22} median {value * 1000:7.1f} ms")
        for who in ("dispatcher", "baseline") if options.baseline else ("dispatcher",):
            print(f"latency  ratio {who} exit 137/exit 1: "
                  f"{exits[f'{who} exit 137'] / exits[f'{who} exit 1']:.2f}  (goal 1.0)")
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
                                               target.env(options.gate))
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
