"""`sidecar doctor` names the engine (Docker Engine, Docker Desktop, Podman; rootless or not)
and checks what Podman needs: answers recorded from the engines, then the real one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import is_podman

from sidecar_gen.doctor.podman import conf_sets_nofile, hard_nofile
from sidecar_gen.host.engine import EngineEndpoint, identify

PODMAN_SOCKET = EngineEndpoint("unix:///run/podman/podman.sock", "DOCKER_HOST")
# Trimmed `/version` answers of dockerd 20.10 and Podman 4.3 (recorded), and Docker Desktop's
# platform name (as Docker Desktop 4.x reports it).
DOCKER_VERSION = {"Platform": {"Name": ""}, "Version": "20.10.24+dfsg1", "ApiVersion": "1.41",
                  "Components": [{"Name": "Engine"}, {"Name": "containerd"}]}
PODMAN_VERSION = {"Platform": {"Name": "linux/amd64/debian-12"}, "Version": "4.3.1",
                  "ApiVersion": "1.41", "Components": [{"Name": "Podman Engine"},
                                                       {"Name": "Conmon"}]}
DESKTOP_VERSION = {**DOCKER_VERSION, "Platform": {"Name": "Docker Desktop 4.30.0 (149282)"}}
ROOTFUL = {"SecurityOptions": ["name=seccomp,profile=default"]}
ROOTLESS = {"SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]}


@pytest.mark.parametrize(("version", "info", "line"), [
    (PODMAN_VERSION, ROOTFUL, "Podman 4.3.1 (API 1.41), rootful, at"
     " unix:///run/podman/podman.sock (from DOCKER_HOST)"),
    (PODMAN_VERSION, ROOTLESS, "Podman 4.3.1 (API 1.41), rootless, at"
     " unix:///run/podman/podman.sock (from DOCKER_HOST)"),
    (DOCKER_VERSION, ROOTLESS, "Docker Engine 20.10.24+dfsg1 (API 1.41), rootless, at"
     " unix:///run/podman/podman.sock (from DOCKER_HOST)"),
    (DESKTOP_VERSION, {}, "Docker Desktop 20.10.24+dfsg1 (API 1.41), rootful, at"
     " unix:///run/podman/podman.sock (from DOCKER_HOST)"),
])
def test_the_engine_is_named(version: dict[str, Any], info: dict[str, Any], line: str) -> None:
    assert identify(version, info, PODMAN_SOCKET).describe() == line


def test_the_services_open_files_limit_and_the_conf_that_lowers_podmans(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max processes             32768                32768                processes \n"
        "Max open files            20000                20000                files     \n")
    assert hard_nofile(7, proc) == 20000
    assert hard_nofile(8, proc) is None
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\n#default_ulimits = [\n#  "nofile=1280:2560",\n#]\n')
    assert not conf_sets_nofile((conf, tmp_path / "missing.conf"))
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=9:9"]\n')
    assert conf_sets_nofile((tmp_path / "missing.conf", conf))


@pytest.mark.docker
def test_doctor_names_the_engine_under_test(docker_client: Any, sidecar_cli: list[str],
                                            tmp_path: Path) -> None:
    ran = subprocess.run([*sidecar_cli, "doctor", "--format", "json"], cwd=tmp_path,
                         capture_output=True, text=True, env=os.environ, timeout=120)
    checks = {c["check"]: c for c in json.loads(ran.stdout)["checks"]}
    engine = checks["engine"]
    assert engine["status"] == "ok", engine
    kind = "Podman" if is_podman(docker_client) else "Docker"
    assert engine["message"].startswith(f"{kind} "), engine
    assert docker_client.version()["Version"] in engine["message"]
    assert ("podman limits" in checks) == (kind == "Podman")
    if kind == "Podman":  # the CI set-up (.ci/podman.sh) made Podman's limits startable
        assert checks["podman limits"]["status"] == "ok", checks["podman limits"]
