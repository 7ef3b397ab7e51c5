"""What the broker does with a request head: a plan to forward it, or a refusal (pure: no I/O).

In this order: the method (CONNECT and TRACE never), the target's form (only a path), the Host
header (the broker's own names only), upgrades and expectations, the endpoint table, then the
service's own rules: for the Anthropic API, the client's credential header must be empty or a
placeholder and the host must hold a credential; for git, the repository must be listed (with
`push` for a push) and the host must hold a GitHub token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import h11

from sidecar_gen.broker.credentials import Credentials, placeholder_problem
from sidecar_gen.broker.endpoints import (
    ANTHROPIC,
    GIT_PREFIX,
    LOCAL,
    AllowedRequest,
    NotForwardedError,
    lookup,
    repository,
)
from sidecar_gen.broker.origin import Origin
from sidecar_gen.broker.target import TargetError, host_allowed, parse_target


class DeniedError(Exception):
    """The request is refused: `status` and one line for the agent (and the log)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Forward:
    """A decided request: where it goes and with which credential."""

    endpoint: AllowedRequest
    origin: Origin
    upstream_target: bytes
    credential: tuple[bytes, bytes] | None
    repository: str | None = None


def check_credential_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Refuse a credential header that is not empty or a placeholder (401)."""
    for name, value in headers:
        if name.lower() in (b"x-api-key", b"authorization"):
            problem = placeholder_problem(name.lower(), value)
            if problem:
                raise DeniedError(401, problem)



DEFAULT_HOSTS = ("sidecar-broker", "localhost", "127.0.0.1", "[::1]")
_REPO_SPEC = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100}?)"
                        r"(?:\.git)?(?::(push|read))?")


class RepoSpecError(ValueError):
    """A `--github-repo` value is not OWNER/REPO[:push]."""


def parse_repo_spec(spec: str) -> tuple[str, bool]:
    """`OWNER/REPO` (read-only) or `OWNER/REPO:push` -> (lower-case owner/repo, push)."""
    found = _REPO_SPEC.fullmatch(spec)
    if not found or found.group(2) in (".", ".."):
        raise RepoSpecError(f"{spec!r} is not OWNER/REPO or OWNER/REPO:push")
    return f"{found.group(1)}/{found.group(2)}".lower(), found.group(3) == "push"


@dataclass(frozen=True)
class BrokerPolicy:
    """Everything a decision depends on."""

    anthropic: Origin
    github: Origin
    credentials: Credentials
    repositories: dict[str, bool] = field(default_factory=dict)  # owner/repo (lower) -> push
    hosts: tuple[str, ...] = DEFAULT_HOSTS


def decide(request: h11.Request, policy: BrokerPolicy) -> Forward:
    """The plan for `request`, or DeniedError saying why not (403 unless said otherwise)."""
    method = request.method.decode("ascii", "replace")
    if method == "CONNECT":
        raise DeniedError(403, "CONNECT is refused: the broker tunnels to no host")
    if method == "TRACE":
        raise DeniedError(403, "TRACE is refused")
    try:
        target = parse_target(request.target.decode("ascii"))
    except UnicodeDecodeError:
        raise DeniedError(400, "the request target is not ASCII") from None
    except TargetError as exc:
        raise DeniedError(403, f"{exc.reason}: refused") from None
    headers: dict[bytes, list[bytes]] = {}
    for name, value in request.headers:
        headers.setdefault(name.lower(), []).append(value)
    hosts = headers.get(b"host", [])
    if len(hosts) != 1 or not host_allowed(hosts[0], policy.hosts):
        raise DeniedError(403, "the Host header names another host: the broker forwards only to "
                           "its configured upstream")
    if b"upgrade" in headers or any(b"upgrade" in v.lower() for v in
                                    headers.get(b"connection", [])):
        raise DeniedError(403, "protocol upgrades (Upgrade, WebSocket, h2c) are refused")
    expect = headers.get(b"expect", [])
    if expect and [v.lower() for v in expect] != [b"100-continue"]:
        raise DeniedError(417, "only Expect: 100-continue is understood")
    try:
        found = lookup(method, target)
    except NotForwardedError as exc:
        raise DeniedError(403, exc.reason) from None
    endpoint = found.endpoint
    if endpoint.max_body == 0 and (b"transfer-encoding" in headers or
                                   headers.get(b"content-length", [b"0"]) != [b"0"]):
        raise DeniedError(413, f"{method} {target.path} takes no body")
    length = headers.get(b"content-length")
    if length and length[0].isdigit() and int(length[0]) > endpoint.max_body:
        raise DeniedError(413, f"request body larger than {endpoint.max_body} bytes")
    if endpoint.service == LOCAL:
        return Forward(endpoint, policy.anthropic, b"", None)
    if endpoint.service == ANTHROPIC:
        check_credential_headers(list(request.headers))
        credential = policy.credentials.anthropic_header() if endpoint.credential else None
        if endpoint.credential and credential is None:
            raise DeniedError(401, "no Anthropic credential is configured on the host (`sidecar "
                               "auth set --api-key` or `--oauth-token`)")
        return Forward(endpoint, policy.anthropic,
                    target.render(policy.anthropic.prefix).encode("ascii"), credential)
    repo = repository(found.params)
    push = policy.repositories.get(repo.lower())
    if push is None:
        raise DeniedError(403, f"github.com/{repo} is not a repository the broker holds a token "
                           "for: refused")
    if endpoint.push and not push:
        raise DeniedError(403, f"github.com/{repo} is listed read-only: pushing is refused")
    credential = policy.credentials.github_header()
    if credential is None:
        raise DeniedError(401, "no GitHub token is configured on the host (`sidecar auth set "
                           "--github-token`)")
    rest = target.path[len(GIT_PREFIX):]
    upstream = policy.github.prefix + rest
    query = target.render()[len(target.path):]
    return Forward(endpoint, policy.github, (upstream + query).encode("ascii"), credential,
                repository=repo)
