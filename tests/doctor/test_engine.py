"""`sidecar doctor` names the engine (Docker Engine, Docker Desktop, Podman; rootless or not)
and checks what Podman needs: answers recorded from the engines, then the real one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest
from conftest import is_podman, unique_name

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.doctor.podman import (
    conf_sets_nofile,
    hard_nofile,
    rlimit_failure,
    start_errors,
    up_failure_hint,
)
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
# Podman 4.3 says it only in its own /libpod/info (recorded from a rootless service).
PODMAN_ROOTLESS = {**ROOTFUL, "host": {"security": {"rootless": True, "seccompEnabled": True}}}
PODMAN_ROOTFUL = {**ROOTFUL, "host": {"security": {"rootless": False}}}


@pytest.mark.parametrize(("version", "info", "line"), [
    (PODMAN_VERSION, ROOTFUL, "Podman 4.3.1 (API 1.41), rootful, at"
     " unix:///run/podman/podman.sock (from DOCKER_HOST)"),
    (PODMAN_VERSION, PODMAN_ROOTLESS, "Podman 4.3.1 (API 1.41), rootless, at"
     " unix:///run/podman/podman.sock (from DOCKER_HOST)"),
    (PODMAN_VERSION, PODMAN_ROOTFUL, "Podman 4.3.1 (API 1.41), rootful, at"
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


PODMAN_RLIMIT = ("runc: runc create failed: unable to start container process: error during"
                 " container init: error setting rlimits for ready process: error setting"
                 " rlimit type 7: operation not permitted: OCI permission denied")


def test_a_refused_default_limit_is_one_line_naming_what_to_set() -> None:
    line = rlimit_failure(["something else", PODMAN_RLIMIT])
    assert line is not None
    assert line.startswith("the engine could not give the containers its default limit of"
                           " open files (nofile), which this host does not allow: add"
                           " `default_ulimits")
    assert "/etc/containers/containers.conf" in line
    assert rlimit_failure(["exec: no such file"]) is None


@pytest.mark.docker
def test_the_engines_own_record_of_a_refused_limit_is_found(docker_client: Any,
                                                            make_container: Any) -> None:
    """A container asking for more open files than the engine may give (what rootful Podman's
    default does on such a host) fails to start; `sidecar up` finds why in its State.Error."""
    project = unique_name("rlimit")
    label = f"com.docker.compose.project={project}"
    try:
        with pytest.raises(docker.errors.APIError):
            make_container(labels={"com.docker.compose.project": project},
                           ulimits=[docker.types.Ulimit(name="nofile", soft=2**31, hard=2**31)])
        errors = start_errors(docker_client, project)
        hint = up_failure_hint(docker_client, project)
        if is_podman(docker_client):
            # Podman records no State.Error: `sidecar up` looks at the host's limits instead
            # (limits_problem; the CI set-up leaves no problem there).
            assert (errors, hint) == ([], None)
            return
        assert hint is not None and "open files (nofile)" in hint, errors
    finally:
        for container in docker_client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)


def test_the_limits_are_those_of_the_process_behind_the_socket(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in service (this process, listening on a unix socket): its hard open-files
    limit is read through the socket's peer, and a containers.conf line silences it."""
    import resource
    import socket

    from sidecar_gen.doctor import podman

    path = tmp_path / "podman.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        identity = identify(PODMAN_VERSION, ROOTFUL, EngineEndpoint(f"unix://{path}",
                                                                    "DOCKER_HOST"))
        conf = tmp_path / "containers.conf"
        monkeypatch.setattr(podman, "CONF_FILES", (conf,))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        problem = podman.limits_problem(identity)
        if 0 <= hard < podman.PODMAN_NOFILE:
            assert problem == (f"the Podman service may open at most {hard} files, less than"
                               " the 1048576 it gives each container: no container can start"
                               " (error setting rlimit type 7)")
        else:
            assert problem is None
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024"]\n')
        assert podman.limits_problem(identity) is None
        rootless = identify(PODMAN_VERSION, PODMAN_ROOTLESS, identity.endpoint)
        assert podman.limits_problem(rootless) is None  # rootless Podman keeps the user's


def test_doctor_says_when_the_gate_mounts_another_engines_socket(tmp_path: Path) -> None:
    from sidecar_gen.doctor import DoctorReport
    from sidecar_gen.doctor.podman import check_socket

    engine_socket = tmp_path / "podman.sock"
    engine_socket.write_text("")
    (tmp_path / "link.sock").symlink_to(engine_socket)
    identity = identify(PODMAN_VERSION, PODMAN_ROOTFUL,
                        EngineEndpoint(f"unix://{engine_socket}", "DOCKER_HOST"))

    def checked(source: str) -> tuple[str, str, str]:
        doc = {"services": {"sidecar-gate": {"volumes": [
            {"type": "volume", "source": "policy", "target": "/run/sidecar/policy"},
            {"type": "bind", "source": source, "target": "/var/run/docker.sock"}]}}}
        report = DoctorReport(ComposeTarget(tmp_path))
        check_socket(report, identity, doc)
        (result,) = report.results
        return str(result.status), result.message, result.fix

    assert checked(str(tmp_path / "link.sock"))[0] == "ok"  # podman-docker's link is fine
    assert checked("/var/run/docker.sock") == (
        "fail", f"the gate mounts /var/run/docker.sock, but the engine is at {engine_socket}",
        f"export DOCKER_SOCKET={engine_socket}, then `sidecar trust` and `sidecar up`")
