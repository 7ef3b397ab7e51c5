"""`sidecar firewall record`: the egress recorder (root, in the claude container, for its life).

Two sources, both kernel- or root-side, so the agent can neither write nor delete what they say:

- **DNS**: the forwarder logs every query (`log-queries=extra`) to its log file in the
  firewall's root-owned state folder. The recorder reads what was added, every `TICK` seconds,
  and empties the file once it passed `LOG_TRUNCATE` bytes (so a flood never fills the disk).
  A name answered NXDOMAIN by the catch-all rule is refused; a forwarded one is allowed.
- **Connections**: the rules send every refused packet through `DROP_CHAIN`, which adds its
  destination (address, protocol:port) to a kernel set with packet counters (bounded by
  `maxelem`, entries expire); the recorder reads the sets every `DROP_POLL` seconds and counts
  what grew. The reason comes from the address (the firewall's state: host, networks).

Both are aggregated per destination (name and query type, or address:port/protocol): the first
attempt is written at once, later ones as one line with the running count every
`FLUSH_SECONDS`. New lines are rate limited (`LINES_PER_SECOND`, `LINES_BURST`); a line left out
by the limit is counted and written later, never lost. More than `MAX_KEYS` destinations share
one key per kind. The record rotates at `RECORD_BYTES` (one older file kept), and the agent's
short reasons (`/run/sidecar/egress/blocked`) hold the last `BLOCKED_LINES` refusals.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar_gen.firewall import DROP4, DROP6, STATE_DIR, FirewallError
from sidecar_gen.firewall.events import (
    ALLOWED,
    BLOCKED_FILE,
    HOST_PORT,
    NO_NAME,
    NOT_ALLOWED,
    OTHER_RESOLVER,
    RECORD_FILE,
    RECORD_OLD,
    SERVICE,
    SPECIAL,
    blocked_line,
    clean_name,
    clean_qtype,
    event,
    timestamp,
)
from sidecar_gen.firewall.networks import SPECIAL4, SPECIAL6
from sidecar_gen.firewall.state import load_state
from sidecar_gen.firewall.system import run
from sidecar_gen.fsutil import write_atomic

TICK = 0.25
DROP_POLL = 1.0
FLUSH_SECONDS = 10.0
LINES_PER_SECOND = 20.0
LINES_BURST = 200.0
MAX_KEYS = 4096
LOG_TRUNCATE = 256 * 1024
RECORD_BYTES = 4 * 1024 * 1024
BLOCKED_LINES = 50
OVERFLOW = "(more destinations than the recorder keeps apart)"

_QUERY = re.compile(r"^(\d+) \S+ query\[([^\]]{1,32})\] (.{1,1100}) from \S+$")
_NX = re.compile(r"^(\d+) \S+ config (.{1,1100}) is NXDOMAIN$")
_FORWARDED = re.compile(r"^(\d+) \S+ forwarded (.{1,1100}) to \S+$")
_DNSMASQ = re.compile(r"dnsmasq\[\d+\]: ")
_MEMBER = re.compile(r"^add \S+ (\S+),(\w+):(\d+) .*?\bpackets (\d+)")


@dataclass
class Tally:
    """One destination's attempts: the first and last time, how many, how many written."""

    doc: dict[str, Any]
    first: float
    last: float
    count: int = 0
    written: int = 0


class Budget:
    """A token bucket of lines."""

    def __init__(self, rate: float = LINES_PER_SECOND, burst: float = LINES_BURST) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        """Spend one line if the bucket holds one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def drop_reason(address: str, proto: str, port: int, gateways: list[str],
                private: list[str]) -> str:
    """Why the rules refused a packet to `address` (from the address alone)."""
    if port == 53 and proto in ("udp", "tcp"):
        return OTHER_RESOLVER
    if address in gateways:
        return HOST_PORT
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return NO_NAME
    if ip.is_link_local:
        return SPECIAL
    nets = SPECIAL4 if ip.version == 4 else SPECIAL6
    if any(ip in ipaddress.ip_network(net) for net in nets) and not any(
            ip in ipaddress.ip_network(net) for net in private if
            ipaddress.ip_network(net).version == ip.version):
        return SPECIAL
    return NO_NAME


class Recorder:
    """The recorder's state; `step` does one tick's work (tests drive it directly)."""

    def __init__(self, state_dir: Path = STATE_DIR, record: Path = Path(RECORD_FILE),
                 blocked: Path = Path(BLOCKED_FILE), old: Path = Path(RECORD_OLD)) -> None:
        self.log = state_dir / "dnsmasq.log"
        self.state_dir = state_dir
        self.record, self.blocked, self.old = record, blocked, old
        self.offset = 0
        self.qtypes: dict[str, str] = {}
        self.tallies: dict[tuple[str, ...], Tally] = {}
        self.drops: dict[tuple[str, str, int], int] = {}
        self.budget = Budget()
        self.recent: list[str] = []
        self.blocked_dirty = False
        self.last_flush = 0.0
        self.last_poll = 0.0
        self.gateways: list[str] = []
        self.private: list[str] = []
        for path in (record, blocked):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.record.touch(mode=0o644)
        if not self.blocked.exists():
            write_atomic(self.blocked, "", mode=0o644)

    # -- input ------------------------------------------------------------------------------

    def read_dns(self) -> None:
        """Take the forwarder's new log lines."""
        try:
            size = self.log.stat().st_size
        except OSError:
            return
        if size < self.offset:
            self.offset = 0  # emptied: by us, or a new forwarder
        if size == self.offset:
            return
        with self.log.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read(size - self.offset)
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        for raw in data[:cut].splitlines():
            self.dns_line(raw.decode("utf-8", "replace"))
        if self.offset >= LOG_TRUNCATE:
            # Emptied in place (the forwarder appends): a line written since the read is lost.
            with contextlib.suppress(OSError):
                os.truncate(self.log, 0)
            self.offset = 0

    def dns_line(self, line: str) -> None:
        """One line of the forwarder's log."""
        match = _DNSMASQ.search(line)
        if match is None:
            return
        text = line[match.end():]
        if query := _QUERY.match(text):
            if len(self.qtypes) > 1024:
                self.qtypes.clear()
            self.qtypes[query.group(1)] = query.group(2)
        elif nx := _NX.match(text):
            qtype = self.qtypes.pop(nx.group(1), "?")
            name = clean_name(nx.group(2))
            self.count(("dns", "deny", name, qtype), event(
                "dns", "deny", NOT_ALLOWED, {"name": name, "qtype": clean_qtype(qtype)}))
        elif forwarded := _FORWARDED.match(text):
            self.qtypes.pop(forwarded.group(1), None)
            name = clean_name(forwarded.group(2))
            reason = ALLOWED if "." in name else SERVICE
            self.count(("dns", "allow", name), event(
                "dns", "allow", reason, {"name": name}))

    def read_drops(self) -> None:
        """Count what grew in the kernel's sets of refused destinations."""
        for name in (DROP4, DROP6):
            try:
                out = run("recorder", ["ipset", "save", name])
            except FirewallError:
                continue
            for line in out.splitlines():
                member = _MEMBER.match(line)
                if member is None:
                    continue
                address, proto, port, packets = (member.group(1), member.group(2),
                                                 int(member.group(3)), int(member.group(4)))
                key = (address, proto, port)
                before = self.drops.get(key, 0)
                if len(self.drops) < 4 * MAX_KEYS or key in self.drops:
                    self.drops[key] = packets
                grew = packets - before if packets >= before else packets
                if grew <= 0:
                    continue
                reason = drop_reason(address, proto, port, self.gateways, self.private)
                self.count(("connect", address, proto, str(port)), event(
                    "connect", "deny", reason,
                    {"address": address, "port": port, "proto": proto}), grew)

    # -- aggregation and output -------------------------------------------------------------

    def count(self, key: tuple[str, ...], doc: dict[str, Any], times: int = 1) -> None:
        """Count attempts at one destination; write its first line at once (budget allowing)."""
        now = time.time()
        tally = self.tallies.get(key)
        if tally is None:
            if len(self.tallies) >= MAX_KEYS:
                key = (key[0], key[1], OVERFLOW)
                tally = self.tallies.get(key)
                if tally is None:
                    doc["details"] = {"other": OVERFLOW}
                    tally = self.tallies[key] = Tally(doc, now, now)
            else:
                tally = self.tallies[key] = Tally(doc, now, now)
        tally.count += times
        tally.last = now
        if tally.written == 0:
            self.emit(tally)

    def emit(self, tally: Tally) -> None:
        """Write a tally's line (with its running count) if the budget allows."""
        if not self.budget.take():
            return
        doc = dict(tally.doc)
        doc["time"] = timestamp(tally.last)
        doc["details"] = {**tally.doc["details"], "count": tally.count,
                          "first": timestamp(tally.first)}
        tally.written = tally.count
        self.write(doc)
        line = blocked_line(doc)
        if line is not None:
            if line in self.recent:
                self.recent.remove(line)
            self.recent.append(line)
            del self.recent[:-BLOCKED_LINES]
            self.blocked_dirty = True

    def write(self, doc: dict[str, Any]) -> None:
        """Append one line to the record; rotate it past RECORD_BYTES."""
        line = json.dumps(doc, ensure_ascii=True, separators=(",", ":")) + "\n"
        try:
            if self.record.stat().st_size + len(line) > RECORD_BYTES:
                os.replace(self.record, self.old)
        except OSError:
            pass
        try:
            fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("ascii"))
            finally:
                os.close(fd)
        except OSError:
            pass  # a full disk must not stop the recorder; only the line is lost

    def flush(self) -> None:
        """Write the running count of every destination tried again since its last line."""
        for tally in self.tallies.values():
            if tally.count > tally.written:
                self.emit(tally)

    def step(self, now: float | None = None) -> None:
        """One tick: read the sources, flush counts when due, refresh the agent's reasons."""
        now = time.monotonic() if now is None else now
        self.read_dns()
        if now - self.last_poll >= DROP_POLL:
            self.last_poll = now
            state = load_state(self.state_dir)
            if state is not None:
                self.gateways, self.private = list(state.gateways), list(state.private_networks)
            self.read_drops()
        if now - self.last_flush >= FLUSH_SECONDS:
            self.last_flush = now
            self.flush()
        if self.blocked_dirty:
            self.blocked_dirty = False
            with contextlib.suppress(OSError):
                write_atomic(self.blocked, "".join(f"{line}\n" for line in self.recent),
                             mode=0o644)


def record_forever(state_dir: Path = STATE_DIR) -> None:
    """Run the recorder until killed (the entrypoint starts it in the background)."""
    recorder = Recorder(state_dir)
    while True:
        try:
            recorder.step()
        except Exception:  # one bad tick must not end the record
            time.sleep(1)
        time.sleep(TICK)
