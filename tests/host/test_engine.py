"""The one way to the host's engine: where it is (DOCKER_HOST, CONTAINER_HOST, the docker CLI's
context, the default socket, in that order) and a real connection through each."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sidecar_gen.host.engine import (
    DEFAULT_SOCKET,
    EngineEndpoint,
    HostEngineError,
    connect,
    find_endpoint,
)

SOCKET = "unix:///var/run/docker.sock"


def _context(config: Path, name: str, host: str, *, tls: bool = False) -> Path:
    """A docker CLI context as `docker context create` stores it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls:
        folder = config / "contexts" / "tls" / digest / "docker"
        folder.mkdir(parents=True)
        return folder
    return meta


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), **extra}


def test_docker_host_comes_first(tmp_path: Path) -> None:
    config = tmp_path / "home" / ".docker"
    _context(config, "remote", "tcp://10.0.0.9:2376")
    env = _env(tmp_path, DOCKER_HOST="tcp://1.2.3.4:2375", CONTAINER_HOST="unix:///podman",
               DOCKER_CONTEXT="remote")
    assert find_endpoint(env) == EngineEndpoint("tcp://1.2.3.4:2375", "DOCKER_HOST")


def test_container_host_comes_before_any_context(tmp_path: Path) -> None:
    env = _env(tmp_path, CONTAINER_HOST="unix:///run/user/1000/podman/podman.sock",
               DOCKER_CONTEXT="remote")
    assert find_endpoint(env) == EngineEndpoint("unix:///run/user/1000/podman/podman.sock",
                                                "CONTAINER_HOST")


def test_the_current_context_of_config_json_then_docker_context_over_it(tmp_path: Path) -> None:
    config = tmp_path / "home" / ".docker"
    _context(config, "desktop", "unix:///home/me/.docker/desktop/docker.sock")
    tls = _context(config, "remote", "tcp://10.0.0.9:2376", tls=True)
    (config / "config.json").write_text(json.dumps({"currentContext": "desktop"}))
    assert find_endpoint(_env(tmp_path)) == EngineEndpoint(
        "unix:///home/me/.docker/desktop/docker.sock", "context desktop")
    assert find_endpoint(_env(tmp_path, DOCKER_CONTEXT="remote")) == EngineEndpoint(
        "tcp://10.0.0.9:2376", "context remote", tls)


def test_docker_config_names_the_folder_and_default_is_the_socket(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere"
    _context(config, "ci", "tcp://ci:2375")
    config.joinpath("config.json").write_text(json.dumps({"currentContext": "ci"}))
    assert find_endpoint(_env(tmp_path, DOCKER_CONFIG=str(config))).source == "context ci"
    assert find_endpoint(_env(tmp_path, DOCKER_CONFIG=str(config), DOCKER_CONTEXT="default")
                         ) == EngineEndpoint(DEFAULT_SOCKET, "default")
    assert find_endpoint(_env(tmp_path)) == EngineEndpoint(DEFAULT_SOCKET, "default")


def test_a_context_that_does_not_exist_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(HostEngineError, match=r"the docker context 'gone' .* has no docker "
                                              "endpoint") as info:
        find_endpoint(_env(tmp_path, DOCKER_CONTEXT="gone"))
    assert "\n" not in info.value.message


def test_an_unreadable_config_json_is_ignored_like_the_docker_cli_does(tmp_path: Path) -> None:
    config = tmp_path / "home" / ".docker"
    config.mkdir(parents=True)
    (config / "config.json").write_text("{not json")
    assert find_endpoint(_env(tmp_path)) == EngineEndpoint(DEFAULT_SOCKET, "default")


def test_an_unreadable_context_is_named(tmp_path: Path) -> None:
    meta = _context(tmp_path / "home" / ".docker", "broken", "unix:///x.sock")
    (meta / "meta.json").write_text("{not json")
    with pytest.raises(HostEngineError, match=r"^cannot read .*meta\.json"):
        find_endpoint(_env(tmp_path, DOCKER_CONTEXT="broken"))


def test_unreachable_says_where_and_which_setting(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path}/none.sock"
    with pytest.raises(HostEngineError, match=r"^cannot reach the Docker engine at "
                       rf"{missing} \(from CONTAINER_HOST; .*is CONTAINER_HOST right\?$"):
        connect(timeout=5, environ=_env(tmp_path, CONTAINER_HOST=missing))
    config = tmp_path / "home" / ".docker"
    _context(config, "off", missing)
    with pytest.raises(HostEngineError, match=r"\(the docker context off; .*is the docker "
                                              r"context off right\?$"):
        connect(timeout=5, environ=_env(tmp_path, DOCKER_CONTEXT="off"))


@pytest.mark.parametrize("setting", ["DOCKER_HOST", "CONTAINER_HOST", "context"])
def test_each_setting_reaches_the_real_engine(setting: str, tmp_path: Path,
                                              docker_client: Any) -> None:
    env = _env(tmp_path)
    if setting == "context":
        _context(tmp_path / "home" / ".docker", "local", SOCKET)
        (tmp_path / "home" / ".docker" / "config.json").write_text(
            json.dumps({"currentContext": "local"}))
    else:
        env[setting] = SOCKET
    client = connect(timeout=30, environ=env)
    try:
        assert client.version()["ApiVersion"] == docker_client.version()["ApiVersion"]
        assert client.info()["ID"] == docker_client.info()["ID"]
    finally:
        client.close()
