"""The firewall's options and state, declared once.

`OPTIONS` is the one table of what reaches the firewall from outside: each option is one
environment variable of the claude container. An option of `sidecar.firewall` in bridge.yaml
keeps its name all the way: the schema's key, the field of `model.Firewall`, the variable
`sidecar render` writes into the generated compose file (`environment`), what `firewall up`
parses it into (`read_options`: the `FirewallState` field of that name, which the rules are
planned from) and what `firewall status` reports (the same field, from state.json).

`FirewallState` is what `firewall up` leaves (`enforcing`, `lockdown`, `isolated` or `open`,
saved as state.json) and what `firewall status` reports after checking it against what runs
(then also `degraded`, `disabled` or `unknown`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar_gen.firewall.networks import (
    NETWORKS_FIX,
    PRIVATE_FIX,
    parse_host_ports,
    parse_networks,
)
from sidecar_gen.fsutil import write_atomic

if TYPE_CHECKING:
    from sidecar_gen.model import Firewall  # render's side only: the image's commands skip it

# The firewall on or off (bridge.yaml's sidecar.firewall.enabled): read by the entrypoint,
# which then runs `firewall up` or not, and by `firewall status`.
ENABLED_ENV = "SIDECAR_FIREWALL"
# GitHub's published ranges, added in the background after `firewall up` (the entrypoint).
GITHUB_ENV = "SIDECAR_FIREWALL_GITHUB"
WONT_START = "Claude Code will not start"


@dataclass(frozen=True)
class Option:
    """One option `firewall up` reads, carried by one environment variable."""

    name: str  # its FirewallState field; for bridge.yaml's, also its key and model field
    env: str
    parse: Callable[[str, str], Any]  # (text, variable) -> the field's value; FirewallError
    comment: str = ""  # the line above it in the generated compose file
    default: str = ""  # the value when the variable is unset or empty, kept as it is
    in_bridge: bool = True  # `sidecar render` sets it from bridge.yaml (else: only by hand)


# In the order `firewall up` reads them (and the generated compose file lists them).
OPTIONS: tuple[Option, ...] = (
    # `auto`: every network the container is attached to counts as the compose network.
    Option("networks", "SIDECAR_FIREWALL_NETWORKS",
           lambda text, variable: parse_networks(text, variable, NETWORKS_FIX), default="auto",
           in_bridge=False),
    Option("host_ports", "SIDECAR_FIREWALL_HOST_PORTS", parse_host_ports,
           "TCP ports of the Docker host (the compose network's gateway) the firewall opens."),
    Option("private_networks", "SIDECAR_FIREWALL_PRIVATE_NETWORKS",
           lambda text, variable: parse_networks(text, variable, PRIVATE_FIX),
           "Private networks an allowed name may resolve into (closed to DNS answers otherwise)."),
)


def environment(firewall: Firewall) -> list[tuple[str, str, str]]:
    """(variable, value, comment) for each option a `model.Firewall` gives a value, when the
    firewall is enabled: what `sidecar render` writes into the claude service."""
    if not firewall.enabled:
        return []
    out = []
    for option in OPTIONS:
        value = getattr(firewall, option.name) if option.in_bridge else None
        if value:
            out.append((option.env, " ".join(str(v) for v in value), option.comment))
    return out


def read_option(option: Option, environ: Mapping[str, str]) -> Any:
    """An option's value, parsed from the environment (left at its default, e.g. `networks`
    "auto", it is that default); FirewallError for a bad one."""
    text = environ.get(option.env, "")
    if option.default and text.strip() in ("", option.default):
        return option.default
    return option.parse(text, option.env)


def firewall_disabled(environ: Mapping[str, str]) -> bool:
    """True when bridge.yaml turned the firewall off (`SIDECAR_FIREWALL=0`)."""
    return environ.get(ENABLED_ENV, "1").strip().lower() in ("0", "false", "no", "off")


# What `firewall up` leaves: it enforces, or it failed closed (lockdown, isolated), or egress
# stays open (nothing could be loaded).
UP_STATES = ("enforcing", "lockdown", "isolated", "open")


@dataclass
class FirewallState:
    """`firewall up`'s result (state.json) and `firewall status`'s report, as data."""

    state: str  # UP_STATES, and for status also degraded | disabled | unknown
    detail: str = ""  # status: what holds now (its one line)
    reason: str = ""  # why it does not enforce
    fix: str = ""
    error: str = ""  # why not even the lockdown rules loaded
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    host_ports: list[int] = field(default_factory=list)
    private_networks: list[str] = field(default_factory=list)
    ipv6: bool = True
    seconds: float = 0.0
    # What `firewall status` saw running (None: not inspectable without root).
    forwarder_alive: bool = False
    rules_v4: bool | None = None
    rules_v6: bool | None = None
    set_sizes: dict[str, int] | None = None

    @property
    def enforcing(self) -> bool:
        """True when egress is filtered by the allowlist."""
        return self.state == "enforcing"

    @property
    def healthy(self) -> bool:
        """True when egress is filtered as configured (or deliberately disabled)."""
        return self.state in ("enforcing", "disabled")

    def message(self) -> str:
        """`firewall up`'s one log line (without the `sidecar: ` prefix): what happened."""
        if self.enforcing:
            host = (f"Docker host TCP {', '.join(map(str, self.host_ports))}"
                    if self.host_ports else "Docker host closed")
            return (f"firewall enforcing: {len(self.domains)} allowed domain(s) + GitHub, "
                    f"networks {', '.join(self.networks) or 'none'}, {host}"
                    f"{'' if self.ipv6 else ' (no IPv6)'}, ready in "
                    f"{self.seconds * 1000:.0f} ms")
        effect = {
            "lockdown": "egress is blocked except the compose network",
            "isolated": ("no rules could be loaded, so the default routes were removed: only "
                         "the compose network is reachable"),
        }.get(self.state, "egress is NOT blocked")
        head = "FIREWALL NOT ENFORCING" if self.state == "open" else "FIREWALL FAILED CLOSED"
        return f"{head}: {self.reason}; {effect}. {WONT_START}. To fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "healthy": self.healthy}


def save_state(state_dir: Path, state: FirewallState) -> None:
    """Record `firewall up`'s result for `firewall status` (root-owned, read by anyone)."""
    data = {**asdict(state), "detail": state.message(), "started": time.time()}
    # Without it status reports "unknown": never a reason to stop the container.
    with contextlib.suppress(OSError):
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        write_atomic(state_dir / "state.json", json.dumps(data, indent=1) + "\n", mode=0o644)


# What `firewall status` finds out itself: never read from the record.
_LIVE = frozenset({"forwarder_alive", "rules_v4", "rules_v6", "set_sizes"})


def _recorded(kind: str, value: Any) -> Any:
    """A recorded value as its field's type (the record is root's, but read it strictly)."""
    items = value if isinstance(value, list) else []
    if kind == "list[int]":
        return [v for v in items if isinstance(v, int) and not isinstance(v, bool)]
    if kind == "list[str]":
        return [str(v) for v in items]
    if kind == "bool":
        return bool(value)
    if kind == "float":
        return float(value) if isinstance(value, int | float) else 0.0
    return str(value or "")


def load_state(state_dir: Path) -> FirewallState | None:
    """What `firewall up` recorded (None without a readable record): every field it saves,
    an option's included, so status reports what up planned with."""
    try:
        data = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    values = {f.name: _recorded(str(f.type), data.get(f.name)) for f in fields(FirewallState)
              if f.name not in _LIVE and f.name != "state"}
    return FirewallState(data["state"] if data.get("state") in UP_STATES else "unknown",
                         **values)
