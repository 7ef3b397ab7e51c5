"""GitHub's published address ranges (api.github.com/meta), added to the GitHub ipsets.

Run in the background after `firewall up`: start-up never waits for GitHub's API.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from sidecar_gen.firewall import GITHUB4, GITHUB6, FirewallError
from sidecar_gen.firewall.networks import split_families
from sidecar_gen.firewall.system import ipv6_available, run

GITHUB_META = "https://api.github.com/meta"
_FIX = "nothing to do: github.com still works through the forwarder"


def github_ranges(meta: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """GitHub's web, API and git ranges from api.github.com/meta, split by family."""
    nets: list[str] = []
    for key in ("web", "api", "git"):
        for item in meta.get(key) or []:
            try:
                net = str(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                continue
            if net not in nets:
                nets.append(net)
    return split_families(nets)


def add_github_ranges(meta: Mapping[str, Any]) -> int:
    """Add GitHub's published ranges to the GitHub sets in one batch; return how many."""
    v4, v6 = github_ranges(meta)
    lines = [f"add {GITHUB4} {net} -exist" for net in v4]
    if ipv6_available():
        lines += [f"add {GITHUB6} {net} -exist" for net in v6]
    if lines:
        run("github", ["ipset", "restore"], "\n".join(lines) + "\n")
    return len(lines)


def fetch_github_meta(timeout: float = 5.0) -> dict[str, Any]:
    """GET api.github.com/meta (through the firewall: the forwarder allows GitHub's names)."""
    import urllib.request

    request = urllib.request.Request(GITHUB_META, headers={"User-Agent": "claude-sidecar"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https URL
            loaded = json.loads(response.read(4_000_000))
    except (OSError, ValueError) as exc:
        raise FirewallError("github", f"{GITHUB_META} not reachable: {exc}", _FIX) from None
    if not isinstance(loaded, dict):
        raise FirewallError("github", "unexpected answer from the meta API", _FIX)
    return loaded
