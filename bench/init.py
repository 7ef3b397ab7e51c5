"""`sidecar init` on real projects: our compose reader vs asking `docker compose config`.

Runs `sidecar init --no-probe --force` on copies of corpus projects (tests/fixtures/real/),
alternating: with the compose CLI on PATH (init asks `docker compose config`) and without it
(init reads the files itself), plus `docker compose config --format json` alone (the floor of
the CLI path) and `sidecar --version` (the floor of any sidecar command: interpreter and CLI
start-up). Prints medians and ratios; run it when the machine is quiet.

    .venv/bin/python bench/init.py [--runs 15] [PROJECT ...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import tempfile
from pathlib import Path

from common import REPO, alternate

CORPUS = REPO / "tests" / "fixtures" / "real"
DEFAULT = ("sentry-self-hosted", "laravel-sail", "openfoodfacts-server", "django-example")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("projects", nargs="*", default=list(DEFAULT))
    args = parser.parse_args()
    sidecar = str(REPO / ".venv" / "bin" / "sidecar")
    docker = shutil.which("docker")
    if docker is None:
        raise SystemExit("the compose CLI is needed to compare against it")
    from ruamel.yaml import YAML

    print(f"{'project':24} {'commands':>8} {'own reader':>11} {'via CLI':>9} {'CLI alone':>10}"
          f" {'start-up':>9} {'own/via CLI':>12} {'own/CLI alone':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.projects:
            source = YAML(typ="safe").load((CORPUS / name / "SOURCE").read_text())
            root = Path(tmp) / name
            shutil.copytree(CORPUS / name / "project", root)
            directory = root / str(source.get("directory", "."))
            base = {"HOME": tmp, **{str(k): str(v) for k, v in
                                    (source.get("environment") or {}).items()}}
            with_cli = {**base, "PATH": os.environ["PATH"]}
            without_cli = {**base, "PATH": "/nonexistent"}  # no docker: init reads the files
            init = [sidecar, "init", "--dir", str(directory), "--no-probe", "--force"]
            medians = alternate(args.runs, {
                "own": (init, without_cli),
                "cli": (init, with_cli),
                "config": (["sh", "-c", f"cd {shlex.quote(str(directory))} && exec "
                            f"{shlex.quote(docker)} compose config --format json"], with_cli),
                "startup": ([sidecar, "--version"], with_cli),
            })
            commands = len((YAML(typ="safe").load(
                (directory / ".sidecar" / "bridge.yaml").read_text()) or {}).get("commands")
                or {})
            print(f"{name:24} {commands:>8} {medians['own'] * 1000:>9.0f}ms "
                  f"{medians['cli'] * 1000:>7.0f}ms {medians['config'] * 1000:>8.0f}ms "
                  f"{medians['startup'] * 1000:>7.0f}ms "
                  f"{medians['own'] / medians['cli']:>12.2f} "
                  f"{medians['own'] / medians['config']:>14.2f}")


if __name__ == "__main__":
    main()
