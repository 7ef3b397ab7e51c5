"""Request-target canonicalization: the only form of a path any gate rule ever sees.

Docker's router is lenient (it cleans paths, decodes percent escapes, accepts any `/v<digits.>`
prefix). The gate is not: a target that is not already in the one canonical form the Docker
clients send is refused before any rule is looked at, so no rule can be bypassed by an
alternative spelling of the same path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

# Container names are `[a-zA-Z0-9][a-zA-Z0-9_.-]+` in Docker; IDs and ID prefixes are hex.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
# API 1.24 (Docker 1.12) is the oldest any current engine accepts; older versions would only
# widen what the engine might interpret differently.
_VERSION = re.compile(r"v1\.(?:2[4-9]|[3-9][0-9])")
_QUERY_CHARS = re.compile(r"(?:[A-Za-z0-9_.~+=&*:,!'()-]|%[0-9A-Fa-f]{2})*")


class PathRejectedError(ValueError):
    """The request target is not in canonical form; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A canonical request target split into its parts."""

    version: str | None  # "v1.41" or None
    segments: tuple[str, ...]  # path segments after the version prefix
    query: tuple[tuple[str, str], ...]  # decoded (key, value) pairs, in order
    raw_query: str | None  # None when the target had no `?`

    @property
    def path(self) -> str:
        """The path without the version prefix, e.g. `/containers/json`."""
        return "/" + "/".join(self.segments)

    def upstream_path(self, segments: tuple[str, ...] | None = None,
                      query: tuple[tuple[str, str], ...] | None = None) -> str:
        """The target to send upstream, rebuilt from parsed parts (never the raw bytes)."""
        parts = segments if segments is not None else self.segments
        prefix = f"/{self.version}" if self.version else ""
        out = prefix + "/" + "/".join(parts)
        pairs = query if query is not None else self.query
        if pairs:
            out += "?" + urlencode(pairs)
        return out


def canonicalize(target: str) -> Target:
    """Split a request target into a `Target`, or raise `PathRejectedError`.

    Refused: anything not starting with `/`, non-printable or non-ASCII bytes, `#`, `\\`, `;`,
    any `%` in the path (percent-encoded `/` or `.` and everything else), empty segments (`//`,
    trailing `/`), `.` and `..` segments, segments outside Docker's name alphabet, and a malformed
    or duplicated query.
    """
    if not target.startswith("/"):
        raise PathRejectedError("request target is not an absolute path")
    if not target.isascii() or not target.isprintable() or " " in target:
        raise PathRejectedError("request target has non-printable or non-ASCII characters")
    path, sep, raw_query = target.partition("?")
    for bad, what in (("%", "percent-encoding"), ("#", "a fragment"), ("\\", "a backslash"),
                      (";", "a parameter"), ("?", "a second '?'")):
        if bad in path or (bad == "#" and bad in raw_query):
            raise PathRejectedError(f"path contains {what}")
    if "?" in raw_query:
        raise PathRejectedError("query contains a second '?'")
    segments = path.split("/")[1:]
    for seg in segments:
        if seg == "":
            raise PathRejectedError("path has an empty segment ('//' or a trailing '/')")
        if seg in (".", ".."):
            raise PathRejectedError("path has a '.' or '..' segment")
        if not _SEGMENT.fullmatch(seg):
            raise PathRejectedError(f"path segment {seg!r} is not a Docker name or keyword")
    version: str | None = None
    if segments and segments[0][:1] in ("v", "V") and segments[0][1:2].isdigit():
        if not _VERSION.fullmatch(segments[0]):
            raise PathRejectedError(
                f"API version prefix {segments[0]!r} is not of the form v1.NN (NN >= 24)")
        version = segments[0]
        segments = segments[1:]
        if segments and _VERSION.fullmatch(segments[0]):
            raise PathRejectedError("path has more than one API version prefix")
    if not segments:
        raise PathRejectedError("path is empty")
    query: tuple[tuple[str, str], ...] = ()
    if sep:
        if raw_query == "":
            raise PathRejectedError("empty query string")
        if not _QUERY_CHARS.fullmatch(raw_query):
            raise PathRejectedError("query string has characters outside the URL alphabet or "
                                    "a broken percent-escape")
        try:
            query = tuple(parse_qsl(raw_query, keep_blank_values=True, strict_parsing=True,
                                    errors="strict", max_num_fields=16))
        except (ValueError, UnicodeDecodeError) as exc:
            raise PathRejectedError(f"malformed query string: {exc}") from exc
        keys = [k for k, _ in query]
        if len(set(keys)) != len(keys):
            raise PathRejectedError("query string repeats a parameter")
    return Target(version=version, segments=tuple(segments), query=query,
                  raw_query=raw_query if sep else None)
