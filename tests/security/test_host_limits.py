"""Host commands do not hang on what the agent writes, and leave no child.

- An alias bomb in an override file (it kept `docker compose config` busy for over ten
  minutes) is refused in one line naming the file, before compose reads it.
- A compose that never answers (a stand-in placed first on PATH as `docker`) is stopped at
  its time limit with its whole process group; no process of it survives.
- SIGTERM, SIGINT or SIGHUP to `sidecar up` while compose runs stops compose's group too, and
  sidecar exits 128+N.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from host.test_process import alive, gone, pids_of

SIDECAR = str(Path(sys.executable).parent / "sidecar")
BRIDGE = 'version: "1"\ncommands:\n  app-sh:\n    container: app\n    exec: sh\n'
# Nine levels of nine aliases: 9^9 (387 million) values once expanded, 1 KiB on disk.
BOMB = "\n".join(
    ['x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] +
    [f"x-{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh", "bcdefghi",
                                                                      strict=True)] +
    ["services: {}"]) + "\n"
# A `docker` that never answers and leaves a grandchild: both pids go to a file.
HANGING_DOCKER = """#!/bin/sh
echo $$ >> {pids}
sleep 1000 &
echo $! >> {pids}
wait
"""


def project(base: Path) -> Path:
    root = base / "shop"
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text("services:\n  app:\n    image: busybox\n")
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE)
    return root


def environ(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return {**env, "XDG_STATE_HOME": str(base / "state"), "NO_COLOR": "1", **extra}


def sidecar(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIDECAR, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_an_alias_bomb_is_refused_naming_the_file_before_compose_reads_it(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                        *args], cwd=root, check=True, capture_output=True)
    (root / "compose.override.yaml").write_text(BOMB)  # what the agent adds
    env = environ(tmp_path)
    expected = (f"sidecar: error: {root}/compose.override.yaml: line 1: more than 100000 "
                "values once aliases are expanded (refused before docker compose reads it)\n")
    for args in (["up"], ["trust", "--yes"], ["session", "new", "s"]):
        done = sidecar(root, env, *args)
        assert (done.returncode, done.stderr) == (2, expected), (args, done)
    doctor = sidecar(root, env, "doctor", "--format", "json")
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["approval"]["status"] == "fail"
    assert checks["approval"]["message"] == expected.removeprefix("sidecar: error: ").strip()
    # validate and render read the project with the compose CLI first: the same bound.
    validate = sidecar(root, env, "validate")
    assert "compose.override.yaml: line 1: more than 100000 values" in validate.stdout
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob(
        "approval.json"))  # nothing was approved


def _hanging_docker(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir, pids = tmp_path / "bin", tmp_path / "pids"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(HANGING_DOCKER.format(pids=pids))
    docker.chmod(0o755)
    return pids, {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_compose_that_never_answers_is_stopped_at_its_limit_with_its_group(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    pids, path = _hanging_docker(tmp_path)
    env = environ(tmp_path, SIDECAR_TIMEOUT_COMPOSE_CONFIG="2",
                  SIDECAR_TIMEOUT_COMPOSE_VERSION="600", **path)
    done = sidecar(root, env, "up")
    assert done.returncode == 1, done
    assert done.stderr == (f"sidecar: error: docker compose config in {root} did not finish "
                           "within 2 s: stopped it and its children (set "
                           "SIDECAR_TIMEOUT_COMPOSE_CONFIG to allow longer)\n")
    # `compose version` ran beside it (its limit is far away): stopped with it.
    found = pids_of(pids, count=4)
    assert gone(found), [p for p in found if alive(p)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_sidecar_up_leaves_no_compose_child(tmp_path: Path, signum: int) -> None:
    root = project(tmp_path)
    pids, path = _hanging_docker(tmp_path)
    running = subprocess.Popen([SIDECAR, "up"], cwd=root, env=environ(tmp_path, **path),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        found = pids_of(pids, count=4)  # compose version and compose config both hang
        time.sleep(0.2)
        running.send_signal(signum)
        _, stderr = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert gone(found), [p for p in found if alive(p)]
