"""bridge.yaml as typed data, built from a document that passed validation.

Each routed command is a `runtime.contract.Route`, built by `Route.from_spec`: the same object
the route cache stores and the dispatcher and the gate read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidecar_gen.limits import StackLimits, limits_from_plain
from sidecar_gen.runtime.contract import Route
from sidecar_gen.runtime.names import ANTHROPIC_UPSTREAM, GITHUB_UPSTREAM, WORKSPACE

DEFAULT_IMAGE = "ghcr.io/claude-sidecar/claude-sidecar:latest"
DEFAULT_WORKSPACE = WORKSPACE
DEFAULT_SHADOW = (".env", ".credentials.json")
DEFAULT_VIEWER_IMAGE = "node:22-slim"


@dataclass(frozen=True)
class Firewall:
    """Egress firewall settings."""

    enabled: bool = True
    domains: tuple[str, ...] = ()
    host_ports: tuple[int, ...] = ()  # TCP ports of the Docker host the firewall opens
    # Special-purpose networks an allowed name's answer may open (a private mirror).
    private_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Viewer:
    """Session viewer settings."""

    enabled: bool = False
    port: int = 3000
    image: str = DEFAULT_VIEWER_IMAGE


@dataclass(frozen=True)
class GithubRepository:
    """One `sidecar.broker.github.repositories` entry."""

    name: str  # OWNER/REPO
    push: bool = False

    @property
    def option(self) -> str:
        """The broker's `--github-repo` value: OWNER/REPO, or OWNER/REPO:push."""
        return f"{self.name}:push" if self.push else self.name


@dataclass(frozen=True)
class GithubAccess:
    """The `sidecar.broker.github` setting: git over HTTPS through the broker."""

    repositories: tuple[GithubRepository, ...] = ()
    upstream: str = GITHUB_UPSTREAM


@dataclass(frozen=True)
class CredentialBroker:
    """The `sidecar.broker` setting: the credential broker (on unless `false`)."""

    enabled: bool = True
    upstream: str = ANTHROPIC_UPSTREAM
    ca_certificates: str | None = None  # a host PEM file, mounted read-only into the broker
    github: GithubAccess | None = None  # None: git in the Claude container is not redirected


def broker_from_plain(value: Any) -> CredentialBroker:
    """`CredentialBroker` from a validated `sidecar.broker` value (absent or true: defaults)."""
    if value is False:
        return CredentialBroker(enabled=False)
    spec = value if isinstance(value, dict) else {}
    github = spec.get("github")
    access = None if github is None else GithubAccess(
        repositories=tuple(GithubRepository(r["name"], bool(r.get("push", False)))
                           for r in github.get("repositories") or ()),
        upstream=github.get("upstream", GITHUB_UPSTREAM))
    return CredentialBroker(upstream=spec.get("upstream", ANTHROPIC_UPSTREAM),
                            ca_certificates=spec.get("ca_certificates"), github=access)


@dataclass(frozen=True)
class Stack:
    """The `sidecar:` section: what `sidecar render` generates."""

    project: str | None = None
    image: str = DEFAULT_IMAGE
    workspace: str = DEFAULT_WORKSPACE
    uid: int = 1000
    gid: int = 1000
    shadow: tuple[str, ...] = DEFAULT_SHADOW
    credentials: str | None = None
    firewall: Firewall = field(default_factory=Firewall)
    viewer: Viewer = field(default_factory=Viewer)
    limits: StackLimits = field(default_factory=StackLimits)
    broker: CredentialBroker = field(default_factory=CredentialBroker)


@dataclass(frozen=True)
class Bridge:
    """A whole bridge.yaml."""

    commands: dict[str, Route]  # command name -> route (the contract the runtime reads)
    containers: dict[str, str] = field(default_factory=dict)
    default_container: str | None = None
    stack: Stack = field(default_factory=Stack)

    def resolve_container(self, logical: str) -> str:
        """Map a logical name through `containers`; other names are returned unchanged."""
        return self.containers.get(logical, logical)


def bridge_from_plain(doc: dict[str, Any]) -> Bridge:
    """Build a `Bridge` from a validated plain document."""
    commands = {name: Route.from_spec(spec) for name, spec in doc["commands"].items()}
    side = doc.get("sidecar") or {}
    fw = side.get("firewall") or {}
    viewer = side.get("viewer") or {}
    stack = Stack(
        project=side.get("project"),
        image=side.get("image", DEFAULT_IMAGE),
        workspace=side.get("workspace", DEFAULT_WORKSPACE),
        uid=side.get("uid", 1000),
        gid=side.get("gid", 1000),
        shadow=tuple(side.get("shadow", DEFAULT_SHADOW)),
        credentials=side.get("credentials"),
        firewall=Firewall(enabled=fw.get("enabled", True), domains=tuple(fw.get("domains", ())),
                          host_ports=tuple(sorted(fw.get("host_ports", ()))),
                          private_networks=tuple(fw.get("private_networks", ()))),
        viewer=Viewer(enabled=viewer.get("enabled", False), port=viewer.get("port", 3000),
                      image=viewer.get("image", DEFAULT_VIEWER_IMAGE)),
        limits=limits_from_plain(side.get("limits")),
        broker=broker_from_plain(side.get("broker", True)),
    )
    return Bridge(
        commands=commands,
        containers=dict(doc.get("containers") or {}),
        default_container=doc.get("default_container"),
        stack=stack,
    )
