"""doctor's lookup of a routed program: from the outside (the engine's stat of each PATH
candidate, nothing run in the target) vs the exec it replaced (`sh -c 'command -v "$1"'`).

A busybox container; per round, alternating (order reversed every other round): a program on
the last PATH entry behind a link (`sh`: 7 stats), a missing one (6 stats), and the exec of the
old way for each. Prints medians and ratios; run it when the machine is quiet.

    .venv/bin/python bench/doctor.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from common import IMAGE

from sidecar_gen.doctor import peek


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    import docker

    client = docker.from_env(timeout=60)
    container = client.containers.run(IMAGE, "sleep 3600", detach=True, init=True,
                                      name=f"sidecar-bench-doctor-{uuid.uuid4().hex[:8]}")
    try:
        def stat(program: str) -> Callable[[], object]:
            return lambda: peek.find_program(client, container.id, program,
                                             search_path=peek.DEFAULT_PATH, workdir="/",
                                             deadline=peek.Deadline(60))

        def exec_(program: str) -> Callable[[], object]:
            return lambda: container.exec_run(["sh", "-c", 'command -v "$1"', "sh", program])

        cases = {"stat sh": stat("sh"), "exec sh": exec_("sh"),
                 "stat missing": stat("no-such-program"),
                 "exec missing": exec_("no-such-program")}
        assert stat("sh")() == "/bin/sh" and stat("no-such-program")() is None
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for index in range(args.runs):
            order = list(cases) if index % 2 == 0 else list(reversed(cases))
            for name in order:
                start = time.perf_counter()
                cases[name]()
                samples[name].append(time.perf_counter() - start)
        median = {name: statistics.median(values) for name, values in samples.items()}
        for name, value in median.items():
            print(f"{name:14} {value * 1000:8.1f} ms")
        for what in ("sh", "missing"):
            print(f"stat/exec {what:8} {median[f'stat {what}'] / median[f'exec {what}']:.2f}")
    finally:
        container.remove(force=True)


if __name__ == "__main__":
    main()
