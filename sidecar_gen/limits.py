"""Resource limits (`sidecar.limits` in bridge.yaml): what they mean, their defaults, the
values too low to run, and the one transform that puts them on the routed services.

Pure: no I/O. The claude and gate limits reach the stack through `sidecar render` (the
compose template); the optional routed limit is applied by `sidecar up` to the verified model
it starts (`limit_routed`), since the routed services are the user's, not rendered by us.

The defaults were measured: Claude Code (the npm image) driving a 200-turn session of Bash
tool calls against a scripted model peaked at 400 MiB RSS and 9 threads, its container at 19
processes and threads; the gate idles at 30 MiB and 18 threads (16 workers, the loop, the
log writer). The claude defaults leave room for language servers and long sessions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MEMORY = re.compile(r"^([1-9][0-9]*)([bkmg])$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
SIZE = re.compile(r"^([1-9][0-9]*)([kmg])$", re.IGNORECASE)  # json-file's max-size


def parse_memory(text: str) -> int:
    """Bytes of `4g`, `512m`, `65536k`, `1048576b` (ValueError otherwise)."""
    match = MEMORY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an amount of memory: {text!r} (write e.g. 512m or 4g)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_memory(size: int) -> str:
    """The shortest exact spelling of `size` bytes: 4294967296 -> `4g`."""
    for unit in ("g", "m", "k"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size}b"


@dataclass(frozen=True)
class Limit:
    """A memory (bytes) and process (tasks: processes and threads) limit; None: not set."""

    memory: int | None = None
    pids: int | None = None

    @property
    def memory_text(self) -> str | None:
        """The memory limit as compose takes it (`4g`), or None."""
        return format_memory(self.memory) if self.memory is not None else None


@dataclass(frozen=True)
class LogRotation:
    """The json-file log of each service sidecar adds: rotated at `max_size`, `max_files`
    files kept."""

    max_size: str = "10m"
    max_files: int = 5

    @property
    def total(self) -> int:
        """Bytes kept at most."""
        match = SIZE.fullmatch(self.max_size)
        assert match is not None  # the schema's pattern
        return int(match.group(1)) * _UNITS[match.group(2).lower()] * self.max_files


CLAUDE_DEFAULT = Limit(memory=4 << 30, pids=1024)
GATE_DEFAULT = Limit(memory=256 << 20, pids=64)
# The broker: one thread per client connection (64 at most), under 40 MiB with 20 streams.
BROKER_DEFAULT = Limit(memory=128 << 20, pids=96)


@dataclass(frozen=True)
class StackLimits:
    """The `sidecar.limits` section."""

    claude: Limit = CLAUDE_DEFAULT
    gate: Limit = GATE_DEFAULT
    broker: Limit = BROKER_DEFAULT
    routed: Limit | None = None  # off unless set: the routed services are the user's
    logs: LogRotation = LogRotation()


# Below these a part cannot do its work (what `validate` refuses, rule `limit-too-low`).
MINIMUMS = {
    "claude": Limit(memory=512 << 20, pids=64),  # Claude Code alone peaked at 400 MiB
    "gate": Limit(memory=64 << 20, pids=32),  # 30 MiB and 18 threads idle
    "broker": Limit(memory=32 << 20, pids=8),  # about 20 MiB idle, a thread per stream
    "routed": Limit(memory=32 << 20, pids=8),
}
MIN_LOG_BYTES = 1 << 20  # the gate's decision trail would keep a few thousand lines


def _limit(spec: Any, default: Limit | None) -> Limit | None:
    if not isinstance(spec, dict):
        return default
    base = default or Limit()
    memory = spec.get("memory")
    return Limit(memory=parse_memory(memory) if memory is not None else base.memory,
                 pids=spec.get("pids", base.pids))


def limits_from_plain(doc: Any) -> StackLimits:
    """`StackLimits` from a validated `sidecar.limits` value (None: the defaults)."""
    doc = doc if isinstance(doc, dict) else {}
    logs = doc.get("logs") if isinstance(doc.get("logs"), dict) else {}
    return StackLimits(
        claude=_limit(doc.get("claude"), CLAUDE_DEFAULT) or CLAUDE_DEFAULT,
        gate=_limit(doc.get("gate"), GATE_DEFAULT) or GATE_DEFAULT,
        broker=_limit(doc.get("broker"), BROKER_DEFAULT) or BROKER_DEFAULT,
        routed=_limit(doc.get("routed"), None),
        logs=LogRotation(max_size=str(logs.get("max_size", LogRotation.max_size)),
                         max_files=int(logs.get("max_files", LogRotation.max_files))))


def too_low(doc: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path under `sidecar.limits`, message) for each value too low to run with."""
    doc = doc if isinstance(doc, dict) else {}
    for part, minimum in MINIMUMS.items():
        spec = doc.get(part)
        if not isinstance(spec, dict):
            continue
        memory = spec.get("memory")
        if isinstance(memory, str) and MEMORY.fullmatch(memory.strip()) \
                and minimum.memory is not None and parse_memory(memory) < minimum.memory:
            yield (part, "memory"), (
                f"{part} memory {memory} is below {format_memory(minimum.memory)}: "
                f"{_why(part)}")
        pids = spec.get("pids")
        if isinstance(pids, int) and minimum.pids is not None and pids < minimum.pids:
            yield (part, "pids"), f"{part} pids {pids} is below {minimum.pids}: {_why(part)}"
    logs = doc.get("logs")
    if isinstance(logs, dict):
        try:
            rotation = limits_from_plain({"logs": logs}).logs
            total = rotation.total
        except (AssertionError, ValueError, TypeError):
            return  # the schema reports the value
        if total < MIN_LOG_BYTES:
            yield ("logs",), (f"logs keep {rotation.max_files} x {rotation.max_size}, below "
                              f"{format_memory(MIN_LOG_BYTES)}: the gate's decision log (the "
                              "audit trail) would keep a few thousand lines")


def _why(part: str) -> str:
    return {
        "claude": "Claude Code alone needs about 400 MiB and a few dozen processes and threads",
        "gate": "the gate needs about 30 MiB and 18 threads idle",
        "broker": "the broker needs about 20 MiB and a thread per stream",
        "routed": "a service cannot run in that",
    }[part]


def _bytes(value: Any) -> int | None:
    """A memory value of compose's model (bytes as a string or a number) as an int."""
    try:
        size = int(str(value))
    except ValueError:
        try:
            size = parse_memory(str(value))
        except ValueError:
            return None
    return size if size > 0 else None


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def limit_routed(doc: dict[str, Any], services: Iterable[str], limit: Limit) -> dict[str, Any]:
    """The compose model `doc` with `limit` on each of `services` (a copy; `doc` is unchanged).

    A ceiling: a service whose own limit (`mem_limit`/`pids_limit` or `deploy.resources.
    limits`) is already lower keeps it; both spellings are set to the result, so compose never
    sees two different values.
    """
    out = dict(doc)
    specs = dict(out.get("services") or {})
    for name in services:
        spec = specs.get(name)
        if not isinstance(spec, dict):
            continue
        spec = dict(spec)
        deploy = spec.get("deploy") if isinstance(spec.get("deploy"), dict) else None
        resources = deploy.get("resources") if deploy and isinstance(
            deploy.get("resources"), dict) else None
        limits = resources.get("limits") if resources and isinstance(
            resources.get("limits"), dict) else None
        if limit.memory is not None:
            own = [m for m in (_bytes(spec.get("mem_limit")),
                               _bytes(limits.get("memory")) if limits else None) if m]
            memory = min([limit.memory, *own])
            spec["mem_limit"] = str(memory)
            if limits is not None and "memory" in limits:
                limits = {**limits, "memory": str(memory)}
        if limit.pids is not None:
            own = [p for p in (_positive(spec.get("pids_limit")),
                               _positive(limits.get("pids")) if limits else None) if p]
            pids = min([limit.pids, *own])
            spec["pids_limit"] = pids
            if limits is not None and "pids" in limits:
                limits = {**limits, "pids": pids}
        if limits is not None and deploy is not None and resources is not None:
            spec["deploy"] = {**deploy, "resources": {**resources, "limits": limits}}
        specs[name] = spec
    out["services"] = specs
    return out
