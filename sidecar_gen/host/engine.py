"""The one way to reach the Docker engine from the host: the docker SDK, connected one way.

Init's probe, doctor, `sidecar up`/`trust` (the policy volume) and sessions all connect here.
Where the engine is, the first of these that is set:

1. `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`, as the docker CLI reads them);
2. `CONTAINER_HOST` (Podman's variable: `unix:///run/user/1000/podman/podman.sock`);
3. the docker CLI's context: `DOCKER_CONTEXT`, else `currentContext` in `config.json` (in
   `DOCKER_CONFIG`, else `~/.docker`), its docker endpoint and the TLS files stored with it
   (the context `default` is the default socket);
4. the default socket, `unix:///var/run/docker.sock`.

The SDK is the host side's tool (it costs ~200 ms to import, so the dispatcher and the gate
never use it: they speak the Engine API through `runtime/`). It is imported when a client is
made, never at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar_gen.errors import ExitCode, SidecarError

if TYPE_CHECKING:
    from docker import DockerClient

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


class HostEngineError(SidecarError):
    """The Docker engine cannot be reached from the host."""

    exit_code = ExitCode.FINDINGS


@dataclass(frozen=True)
class EngineEndpoint:
    """Where the engine is, and which setting said so (for messages)."""

    url: str
    source: str  # "DOCKER_HOST", "CONTAINER_HOST", "context NAME" or "default"
    tls_dir: Path | None = None  # a context's TLS files (ca.pem, cert.pem, key.pem)
    verify: bool = True


def _config_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get("DOCKER_CONFIG")
    if configured:
        return Path(configured)
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".docker"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HostEngineError(f"cannot read {path}: {exc}") from None


def _context_endpoint(name: str, config: Path) -> EngineEndpoint:
    """The docker endpoint of the CLI context `name` (stored under `config`/contexts)."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    meta = _read_json(config / "contexts" / "meta" / digest / "meta.json")
    endpoints = meta.get("Endpoints") if isinstance(meta, dict) else None
    docker = endpoints.get("docker") if isinstance(endpoints, dict) else None
    host = docker.get("Host") if isinstance(docker, dict) else None
    if not isinstance(host, str) or not host:
        raise HostEngineError(f"the docker context {name!r} (DOCKER_CONTEXT or currentContext "
                              f"in {config / 'config.json'}) has no docker endpoint")
    tls = config / "contexts" / "tls" / digest / "docker"
    skip = isinstance(docker, dict) and docker.get("SkipTLSVerify") is True
    return EngineEndpoint(host, f"context {name}", tls if tls.is_dir() else None,
                          verify=not skip)


def find_endpoint(environ: Mapping[str, str] | None = None) -> EngineEndpoint:
    """Where the engine is, by the precedence this module's docstring gives."""
    env = os.environ if environ is None else environ
    for variable in ("DOCKER_HOST", "CONTAINER_HOST"):
        if env.get(variable):
            return EngineEndpoint(env[variable], variable)
    config = _config_dir(env)
    name = env.get("DOCKER_CONTEXT")
    if not name:
        # Like the docker CLI, an unreadable config.json is as good as none (it only warns).
        try:
            settings = _read_json(config / "config.json")
        except HostEngineError:
            settings = None
        current = settings.get("currentContext") if isinstance(settings, dict) else None
        name = current if isinstance(current, str) else ""
    if name and name != "default":
        return _context_endpoint(name, config)
    return EngineEndpoint(DEFAULT_SOCKET, "default")


def client_for(endpoint: EngineEndpoint, timeout: int,
               environ: Mapping[str, str] | None = None) -> DockerClient:
    """A docker SDK client of `endpoint` (nothing is sent yet)."""
    import docker
    from docker.tls import TLSConfig
    from docker.utils import kwargs_from_env

    if endpoint.source == "DOCKER_HOST":
        env = dict(os.environ if environ is None else environ)
        return docker.DockerClient(timeout=timeout, **kwargs_from_env(environment=env))
    tls: TLSConfig | bool = False
    if endpoint.tls_dir is not None:
        ca, cert, key = (str(endpoint.tls_dir / name) for name in TLS_FILES)
        tls = TLSConfig(client_cert=(cert, key) if os.path.exists(cert) else None,
                        ca_cert=ca if endpoint.verify and os.path.exists(ca) else None,
                        verify=endpoint.verify)
    return docker.DockerClient(base_url=endpoint.url, timeout=timeout, tls=tls)


def connect(timeout: int = 120, environ: Mapping[str, str] | None = None) -> DockerClient:
    """A docker SDK client of the engine `find_endpoint` names, checked with a ping.

    Raises HostEngineError (one line: where, which setting, why) when it does not answer.
    """
    endpoint = find_endpoint(environ)
    try:
        client = client_for(endpoint, timeout, environ)
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for "not reachable"
        raise HostEngineError(f"cannot reach the Docker engine at {endpoint.url} "
                              f"({_said_by(endpoint)}; {exc}): is it running, and is "
                              f"{_setting(endpoint)} right?") from None
    return client


def _said_by(endpoint: EngineEndpoint) -> str:
    if endpoint.source == "default":
        return "the default"
    if endpoint.source.startswith("context "):
        return f"the docker {endpoint.source}"
    return f"from {endpoint.source}"


def _setting(endpoint: EngineEndpoint) -> str:
    if endpoint.source.startswith("context "):
        return f"the docker {endpoint.source}"
    return "DOCKER_HOST" if endpoint.source == "default" else endpoint.source


@dataclass(frozen=True)
class EngineIdentity:
    """Which engine answers: kind (Docker Engine, Docker Desktop, Podman), version, whether it
    runs rootless, and where it was reached (for `sidecar doctor`)."""

    kind: str
    version: str
    api_version: str
    rootless: bool
    endpoint: EngineEndpoint

    @property
    def is_podman(self) -> bool:
        """Whether it is Podman's Docker-compatible API service."""
        return self.kind == "Podman"

    def describe(self) -> str:
        """One line: `Podman 4.3.1 (API 1.41), rootful, at unix:///run/podman/podman.sock
        (from DOCKER_HOST)`."""
        mode = "rootless" if self.rootless else "rootful"
        return (f"{self.kind} {self.version} (API {self.api_version}), {mode}, at"
                f" {self.endpoint.url} ({_said_by(self.endpoint)})")


def identify(version: Mapping[str, Any], info: Mapping[str, Any],
             endpoint: EngineEndpoint) -> EngineIdentity:
    """The engine from its `/version` and `/info` answers: Podman names its component
    "Podman Engine", Docker Desktop its platform; Docker lists `name=rootless` among the
    security options when it runs rootless. Podman 4.3 does not: pass its own
    `/libpod/info` answer as `info` (`host.security.rootless`, see `podman_info`)."""
    components = version.get("Components") or []
    names = {str(c.get("Name", "")) for c in components if isinstance(c, dict)}
    platform = version.get("Platform") or {}
    platform_name = str(platform.get("Name", "")) if isinstance(platform, dict) else ""
    if "Podman Engine" in names:
        kind = "Podman"
    elif "Docker Desktop" in platform_name:
        kind = "Docker Desktop"
    else:
        kind = "Docker Engine"
    options = info.get("SecurityOptions") or []
    rootless = any("name=rootless" in str(option) for option in options)
    host = info.get("host")
    security = host.get("security") if isinstance(host, dict) else None
    if isinstance(security, dict) and isinstance(security.get("rootless"), bool):
        rootless = security["rootless"]
    return EngineIdentity(kind, str(version.get("Version", "?")),
                          str(version.get("ApiVersion", "?")), rootless, endpoint)


def engine_identity(client: DockerClient) -> EngineIdentity:
    """Ask the engine `client` reaches who it is (for Podman also its own `/libpod/info`, the
    one answer that says whether it runs rootless)."""
    version = client.version()
    info: Mapping[str, Any] = client.info()
    if any(isinstance(c, dict) and c.get("Name") == "Podman Engine"
           for c in version.get("Components") or []):
        response = client.api.get(f"{client.api.base_url}/v4.0.0/libpod/info")
        if response.ok:
            info = {**info, **response.json()}
    return identify(version, info, find_endpoint())
