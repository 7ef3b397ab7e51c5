"""What `scripts/test` sets up before it runs anything: the engine check and the local images.

The scripts run in a copy of the checkout (they `cd` to the folder they are in, and bootstrap
writes `.venv` there): the copy's `.venv` holds only this interpreter and bootstrap's stamp, so
bootstrap finds it installed and nothing is written into the real checkout.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import images
import pytest
from conftest import TEST_LABEL, unavailable, unique_name

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the scripts read: scripts/, pyproject.toml, tests/images.py, and a
    `.venv` that is this interpreter, stamped as installed after pyproject.toml."""
    copy = tmp_path / "checkout"
    shutil.copytree(REPO / "scripts", copy / "scripts")
    shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")
    (copy / "tests").mkdir()
    shutil.copy2(REPO / "tests" / "images.py", copy / "tests" / "images.py")
    (copy / ".venv" / "bin").mkdir(parents=True)
    (copy / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (copy / ".venv" / ".sidecar-installed").touch()
    return copy


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.lstat().st_mtime for p in root.rglob("*")}


def test_required_without_an_engine_stops_in_one_line_before_running_anything(
        checkout: Path) -> None:
    env = {**os.environ, "SIDECAR_E2E": "required",
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    before = _tree(checkout)
    result = subprocess.run([str(checkout / "scripts" / "test")], capture_output=True,
                            text=True, env=env, timeout=600)
    assert _tree(checkout) == before  # bootstrap found the copy installed
    assert result.returncode == 2
    assert result.stdout == ""  # neither ruff, mypy nor pytest ran
    # (scripts/bootstrap may speak first, when pyproject.toml changed since it last ran)
    assert result.stderr.splitlines()[-1] == (
        "scripts/test: SIDECAR_E2E=required but no Docker engine is reachable (Debian: bash "
        ".ci/engine.sh starts one); nothing was run")


def test_test_images_without_an_engine_says_so(checkout: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = subprocess.run([str(checkout / "scripts" / "test-images")], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "test images: no Docker engine is reachable (docker version failed)"]


def test_busybox_rootfs_is_owned_by_root_with_every_applet(tmp_path: Path) -> None:
    busybox = images.find_static_busybox()
    if busybox is None:
        pytest.skip("no static busybox on this machine (Debian: busybox-static)")
    with tarfile.open(fileobj=io.BytesIO(images.busybox_rootfs(busybox))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert members["tmp"].mode == 0o1777
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["usr/sbin/httpd"].issym()
    assert members["bin/busybox"].isreg() and members["bin/busybox"].mode == 0o755


def test_busybox_recipe_makes_a_working_image(docker_client: Any) -> None:
    # The recipe runs only where the image is missing: build it under another name to prove it.
    if images.find_static_busybox() is None:
        unavailable("no static busybox on this machine (Debian: busybox-static)")
    name = f"{unique_name('sidecar-test/busybox-recipe')}:test"
    images.build_busybox(name)
    try:
        out = docker_client.containers.run(
            name, ["sh", "-c", "id app; stat -c %a /tmp; wget --help 2>&1 | head -n 1"],
            remove=True, labels={TEST_LABEL: "1"}).decode()
    finally:
        docker_client.images.remove(name, force=True)
    assert out.splitlines()[:2] == ["uid=1000(app) gid=1000(app) groups=1000(app)", "1777"]
    assert out.splitlines()[2].startswith("BusyBox")
