"""allowed-domains.txt, parsed strictly: any doubt is an error, and an error fails closed."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sidecar_gen.firewall import GITHUB_DOMAINS, FirewallError

MAX_DOMAINS = 2000
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
NOT_APPROVED_FIX = ("run `sidecar up` on the host: it installs the allowlist you approved "
                    "(a hand-made setup mounts a folder with allowed-domains.txt at "
                    "/run/sidecar/policy)")
INVALID_FIX = ("fix sidecar.firewall.domains in bridge.yaml, run `sidecar render`, then "
               "`sidecar up` on the host")


@dataclass(frozen=True)
class DomainProblem:
    """One bad line of allowed-domains.txt."""

    line: int
    text: str
    message: str


def is_ip(text: str) -> bool:
    """True when `text` (brackets allowed) is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def check_domain(name: str) -> str | None:
    """Why `name` is not an acceptable allowed domain (None when it is)."""
    if "://" in name or "/" in name:
        return "write a bare domain name, not a URL"
    if name.startswith("*."):
        return "write the domain without '*.': subdomains are always included"
    if ":" in name and not is_ip(name):
        return "no ports: a domain is allowed on every port"
    if is_ip(name):
        return "an IP address: list domain names (their addresses are allowed as resolved)"
    if len(name) > 253:
        return "longer than 253 characters"
    labels = name.split(".")
    if len(labels) < 2:
        return "a single label would allow a whole top-level domain"
    for label in labels:
        if not _LABEL.match(label):
            return f"invalid label {label!r} (letters, digits and '-', 1 to 63 characters)"
    if labels[-1].isdigit():
        return "the last label cannot be a number"
    return None


def parse_domains(text: str) -> tuple[list[str], list[DomainProblem]]:
    """Parse allowed-domains.txt strictly: (domains in order, without duplicates; problems).

    One domain per line; `#` starts a comment; blank lines are ignored; names are lowercased.
    Every bad line is reported, not only the first.
    """
    domains: list[str] = []
    problems: list[DomainProblem] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(line.split()) > 1:
            problems.append(DomainProblem(number, line, "one domain per line"))
            continue
        name = line.lower().rstrip(".") if line.endswith(".") and line != "." else line.lower()
        reason = check_domain(name)
        if reason:
            problems.append(DomainProblem(number, line, reason))
        elif name not in seen:
            seen.add(name)
            domains.append(name)
    if len(domains) > MAX_DOMAINS:
        problems.append(DomainProblem(0, "", f"more than {MAX_DOMAINS} domains"))
    return domains, problems


def load_domains(path: Path) -> list[str]:
    """Read and strictly parse allowed-domains.txt; any problem raises FirewallError.

    A missing file means no allowlist was approved: the error says how to approve one.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FirewallError(str(path), "no approved allowlist (No such file or directory)",
                            NOT_APPROVED_FIX) from None
    except OSError as exc:
        raise FirewallError(str(path), exc.strerror or "cannot read", NOT_APPROVED_FIX) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FirewallError(str(path), "not UTF-8 text", INVALID_FIX) from None
    domains, problems = parse_domains(text)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise FirewallError(f"{path}:{first.line}", f"{first.text!r}: {first.message}{more}",
                            INVALID_FIX)
    return domains


def with_github(domains: Sequence[str]) -> list[str]:
    """The forwarder's allowed names: the file's, then GitHub's (once)."""
    out = list(domains)
    for name in GITHUB_DOMAINS:
        if not any(name == d or name.endswith("." + d) for d in out):
            out.append(name)
    return out
