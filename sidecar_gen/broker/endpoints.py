"""The table of requests the broker forwards, one row each (pure: no I/O).

Only what Claude Code calls passes, found by running the real Claude Code against a recording
stand-in with `ANTHROPIC_BASE_URL` set: `claude -p` sends `POST /v1/messages?beta=true`
(streamed), an interactive session also `POST /v1/messages/count_tokens?beta=true` (`/context`),
and with nonessential traffic left on, `HEAD /api/hello` (its connectivity check). The models
list is Claude Code's public API too (`/model` with some providers). Git over HTTPS is the smart
protocol of `https://github.com/OWNER/REPO`, sent here by git's `url.<broker>.insteadOf`.

A row says the service (which upstream and credential), the method, the path template
(`{name}` matches one segment against `SEGMENT[name]`), the query parameters allowed (each
value matched whole) and which of them are required, whether the credential is added, the
largest body, whether the response carries token usage, and whether it writes (a git push).
One row is the broker's own: its health (`GET /sidecar-broker/health`: which kinds of
credential it holds, never a value), for the container's healthcheck and `sidecar doctor`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sidecar_gen.broker.target import CanonicalTarget
from sidecar_gen.runtime.names import BROKER_GIT_PREFIX

MIB = 1024 * 1024
ANTHROPIC = "anthropic"
GITHUB = "github"
LOCAL = "broker"  # answered by the broker itself, never forwarded
GIT_PREFIX = BROKER_GIT_PREFIX
HEALTH_PATH = "/sidecar-broker/health"

# What one `{name}` segment may be.
SEGMENT: dict[str, re.Pattern[str]] = {
    "model": re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"),
    "owner": re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"),
    "repo": re.compile(r"[A-Za-z0-9._-]{1,100}"),
}
_ID = r"[A-Za-z0-9._-]{1,128}"


@dataclass(frozen=True)
class AllowedRequest:
    """One kind of request the broker forwards."""

    service: str
    method: str
    template: str
    query: dict[str, str] = field(default_factory=dict)  # name -> regex of the whole value
    required: frozenset[str] = frozenset()
    credential: bool = True
    max_body: int = 0
    usage: bool = False
    push: bool = False

    def match_path(self, target: CanonicalTarget) -> dict[str, str] | None:
        """The template's parameters when `target`'s path fits, else None."""
        parts = self.template[1:].split("/")
        segments = target.segments
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, seg in zip(parts, segments, strict=True):
            if part.startswith("{"):
                name = part[1:-1]
                if not SEGMENT[name].fullmatch(seg):
                    return None
                params[name] = seg
            elif part != seg:
                return None
        return params

    def query_problem(self, target: CanonicalTarget) -> str | None:
        """Why `target`'s query is not allowed here, or None."""
        given = target.query_dict()
        for name, value in given.items():
            pattern = self.query.get(name)
            if pattern is None:
                return f"query parameter {name} is not allowed here"
            if not re.fullmatch(pattern, value):
                return f"query parameter {name}={value} is not allowed here"
        missing = sorted(self.required - set(given))
        if missing:
            return f"query parameter {missing[0]} is required here"
        return None


ENDPOINTS: tuple[AllowedRequest, ...] = (
    AllowedRequest(ANTHROPIC, "POST", "/v1/messages", {"beta": "true"}, max_body=32 * MIB,
             usage=True),
    AllowedRequest(ANTHROPIC, "POST", "/v1/messages/count_tokens", {"beta": "true"},
             max_body=32 * MIB, usage=True),
    AllowedRequest(ANTHROPIC, "GET", "/v1/models",
             {"beta": "true", "limit": r"[0-9]{1,4}", "before_id": _ID, "after_id": _ID}),
    AllowedRequest(ANTHROPIC, "GET", "/v1/models/{model}", {"beta": "true"}),
    AllowedRequest(ANTHROPIC, "HEAD", "/api/hello", credential=False),
    AllowedRequest(LOCAL, "GET", HEALTH_PATH, credential=False),
    AllowedRequest(GITHUB, "GET", GIT_PREFIX + "/{owner}/{repo}/info/refs",
             {"service": "git-upload-pack"}, frozenset({"service"})),
    AllowedRequest(GITHUB, "POST", GIT_PREFIX + "/{owner}/{repo}/git-upload-pack",
             max_body=64 * MIB),
    AllowedRequest(GITHUB, "GET", GIT_PREFIX + "/{owner}/{repo}/info/refs",
             {"service": "git-receive-pack"}, frozenset({"service"}), push=True),
    AllowedRequest(GITHUB, "POST", GIT_PREFIX + "/{owner}/{repo}/git-receive-pack",
             max_body=2048 * MIB, push=True),
)


@dataclass(frozen=True)
class Match:
    """The row a request fits, and the template's parameters."""

    endpoint: AllowedRequest
    params: dict[str, str]


class NotForwardedError(Exception):
    """No row allows the request: `reason` is one line for the agent and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lookup(method: str, target: CanonicalTarget,
           table: tuple[AllowedRequest, ...] = ENDPOINTS) -> Match:
    """The row allowing `method` on `target`; NotForwardedError, saying why, when there is none."""
    by_path = [(row, params) for row in table
               if (params := row.match_path(target)) is not None]
    if not by_path:
        raise NotForwardedError(f"{target.path} is not an API path the broker forwards")
    rows = [(row, params) for row, params in by_path if row.method == method]
    if not rows:
        allowed = sorted({row.method for row, _ in by_path})
        raise NotForwardedError(f"method {method} is not allowed on {target.path} "
                      f"(allowed: {', '.join(allowed)})")
    problems: list[str] = []
    for row, params in rows:
        problem = row.query_problem(target)
        if problem is None:
            return Match(row, params)
        problems.append(problem)
    raise NotForwardedError(problems[0])


def repository(params: dict[str, str]) -> str:
    """`owner/repo` of a git row's parameters, without a `.git` suffix."""
    repo = params["repo"]
    return f"{params['owner']}/{repo[:-4] if repo.endswith('.git') else repo}"
