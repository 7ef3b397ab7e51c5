"""`sidecar init` reading local images (no container runs) vs the obvious alternative.

A project whose services run images that are on this machine and not running: `sidecar init`
(which creates a container per image, stats each catalogue program on the image's PATH through
the engine, and removes it: nothing runs) against `docker run --rm IMAGE sh -c 'command -v ...'`
for each image (the obvious way, which starts the image) and `sidecar init --no-probe` (what
init costs without looking). Alternating runs; prints medians and ratios.

    .venv/bin/python bench/imageprobe.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
from pathlib import Path

from common import IMAGE, REPO, alternate

sys_images = (IMAGE, "sidecar-test/debian:bookworm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    from sidecar_gen.scaffold.programs import CATALOGUE

    sidecar = str(REPO / ".venv" / "bin" / "sidecar")
    env = {"PATH": os.environ["PATH"], "HOME": tempfile.gettempdir()}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "bench-imageprobe"
        project.mkdir()
        (project / "compose.yaml").write_text(json.dumps({"services": {
            f"s{index}": {"image": image} for index, image in enumerate(sys_images)}}))
        init = [sidecar, "init", "--dir", str(project), "--force"]
        script = "; ".join(f"command -v {p} >/dev/null && echo {p}" for p in CATALOGUE)
        runs = " && ".join(f"docker run --rm --network none {shlex.quote(image)} sh -c "
                           f"{shlex.quote(script + '; true')} >/dev/null" for image in sys_images)
        medians = alternate(args.runs, {
            "init": (init, env),
            "no-probe": ([*init, "--no-probe"], env),
            "docker run": (["sh", "-c", runs], env),
        })
    print(f"{len(sys_images)} local images, {len(CATALOGUE)} programs looked for")
    print(f"{'init (reads images)':24} {medians['init'] * 1000:>8.0f} ms")
    print(f"{'init --no-probe':24} {medians['no-probe'] * 1000:>8.0f} ms")
    print(f"{'docker run per image':24} {medians['docker run'] * 1000:>8.0f} ms")
    looked = medians["init"] - medians["no-probe"]
    print(f"reading the images / starting them: {looked / medians['docker run']:.2f}")
    print(f"init / init --no-probe: {medians['init'] / medians['no-probe']:.2f}")


if __name__ == "__main__":
    main()
