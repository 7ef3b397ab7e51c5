"""An upstream's origin: an https URL taken apart once (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar_gen.errors import InputError


@dataclass(frozen=True)
class Origin:
    """An HTTPS upstream: host, port and the path prefix every request goes under."""

    host: str
    port: int = 443
    prefix: str = ""

    @property
    def host_header(self) -> bytes:
        """The Host header for this origin."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == 443 else f"{host}:{self.port}").encode("ascii")

    def __str__(self) -> str:
        return "https://" + self.host_header.decode() + self.prefix


def parse_origin(url: str, what: str) -> Origin:
    """An `https://host[:port][/prefix]` URL; InputError (naming `what`) for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(what, f"not a URL: {exc}") from None
    if parts.scheme != "https":
        raise InputError(what, f"{url!r}: the upstream must be https:// (TLS with certificate "
                         "verification)")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise InputError(what, f"{url!r}: give scheme, host, port and path only")
    prefix = parts.path.rstrip("/")
    if prefix and (not prefix.startswith("/") or "//" in prefix or "%" in prefix):
        raise InputError(what, f"{url!r}: the path prefix must be a plain /path")
    return Origin(parts.hostname.lower(), port or 443, prefix)
