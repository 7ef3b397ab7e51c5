"""Request targets in the one canonical form the broker accepts (pure: no I/O).

The agent writes every byte of the request, so a target is taken apart once, strictly, and
anything a server or a proxy could read two ways is refused before any rule is looked at:
another host (absolute-form, authority-form, `*`), escapes (`%`, `\\`, `.` and `..` segments,
doubled or trailing slashes), and characters the API paths never use (only [A-Za-z0-9_.~-] and `/`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every character the upstreams' API paths use (model ids, owners, repositories, `.git`).
_PATH = re.compile(r"/(?:[A-Za-z0-9_.~-]+/)*[A-Za-z0-9_.~-]+")
_QUERY_PART = re.compile(r"[A-Za-z0-9_.~-]+")
MAX_TARGET = 2048


class TargetError(Exception):
    """The request target is not one the broker reads: `reason` says why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CanonicalTarget:
    """A canonical origin-form target: its path segments and its query parameters."""

    path: str
    query: tuple[tuple[str, str], ...]

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's segments, without the leading empty one."""
        return tuple(self.path[1:].split("/"))

    def query_dict(self) -> dict[str, str]:
        """The parameters by name (names are unique in a canonical target)."""
        return dict(self.query)

    def render(self, prefix: str = "") -> str:
        """The target to send upstream: `prefix` + path, and the query as received."""
        query = "&".join(f"{k}={v}" for k, v in self.query)
        return prefix + self.path + (f"?{query}" if query else "")


def parse_target(raw: str) -> CanonicalTarget:
    """Parse an origin-form request target; TargetError for anything else."""
    if len(raw) > MAX_TARGET:
        raise TargetError(f"request target longer than {MAX_TARGET} characters")
    if raw == "*":
        raise TargetError("asterisk-form target")
    if not raw.startswith("/"):
        # absolute-form (`http://host/...`) or authority-form (`host:443`, CONNECT's)
        raise TargetError("only a path is accepted: a target naming a host (absolute-form or "
                          "authority-form) would reach another host")
    if raw.startswith("//"):
        raise TargetError("doubled slash: a target starting with // names a host")
    for char, what in (("%", "percent-escape"), ("\\", "backslash"), ("#", "fragment"),
                       (";", "semicolon")):
        if char in raw:
            raise TargetError(f"{what} in the target: paths are taken literally, escapes are "
                              "refused")
    path, sep, query = raw.partition("?")
    if "//" in path:
        raise TargetError("doubled slash in the path")
    if path.endswith("/") and path != "/":
        raise TargetError("trailing slash in the path")
    segments = path[1:].split("/")
    if any(seg in (".", "..") for seg in segments):
        raise TargetError("dot segment (`.` or `..`) in the path")
    if not _PATH.fullmatch(path):
        raise TargetError("character outside [A-Za-z0-9_.~-] in the path")
    return CanonicalTarget(path, _parse_query(query) if sep else ())


def _parse_query(query: str) -> tuple[tuple[str, str], ...]:
    if not query:
        raise TargetError("empty query string")
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq or not _QUERY_PART.fullmatch(name) or not _QUERY_PART.fullmatch(value):
            raise TargetError("query parameter that is not name=value in [A-Za-z0-9_.~-]")
        if any(name == seen for seen, _ in pairs):
            raise TargetError(f"repeated query parameter {name}")
        pairs.append((name, value))
    return tuple(pairs)


def host_allowed(host: bytes | None, allowed: tuple[str, ...]) -> bool:
    """True when the Host header names the broker itself (one of `allowed`, any port)."""
    if host is None:
        return False
    try:
        text = host.decode("ascii").lower()
    except UnicodeDecodeError:
        return False
    if text.startswith("["):  # [v6]:port
        name, _, rest = text.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            return False
    else:
        name, _, port = text.partition(":")
    if port and not (port.isdigit() and len(port) <= 5):
        return False
    return name in allowed
