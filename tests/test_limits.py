"""`sidecar.limits`: memory spellings, the model, and the routed limit `sidecar up` puts on the
services commands route to (a ceiling, in both of compose's spellings, accepted by compose)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sidecar_gen.limits import (
    CLAUDE_DEFAULT,
    GATE_DEFAULT,
    Limit,
    LogRotation,
    format_memory,
    limit_routed,
    limits_from_plain,
    parse_memory,
)
from sidecar_gen.model import bridge_from_plain


@pytest.mark.parametrize(("text", "size"), [
    ("4g", 4 << 30), ("4G", 4 << 30), ("512m", 512 << 20), ("65536k", 64 << 20),
    ("1048576b", 1 << 20), ("1536m", 1536 << 20)])
def test_memory_spellings(text: str, size: int) -> None:
    assert parse_memory(text) == size
    assert parse_memory(format_memory(size)) == size


@pytest.mark.parametrize("text", ["", "4", "0g", "4 g", "4gb", "-1m", "1.5g", "g"])
def test_not_memory(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount of memory"):
        parse_memory(text)


def test_format_is_the_shortest_exact_unit() -> None:
    assert [format_memory(n) for n in (4 << 30, 1536 << 20, 1025, 3 << 10)] == \
        ["4g", "1536m", "1025b", "3k"]


def test_defaults_and_partial_sections() -> None:
    assert limits_from_plain(None).claude == CLAUDE_DEFAULT == Limit(4 << 30, 1024)
    assert limits_from_plain(None).routed is None
    limits = limits_from_plain({"claude": {"memory": "8g"}, "routed": {"pids": 100},
                                "logs": {"max_files": 2}})
    assert limits.claude == Limit(8 << 30, 1024)
    assert limits.gate == GATE_DEFAULT
    assert limits.routed == Limit(None, 100)
    assert limits.logs == LogRotation("10m", 2)
    bridge = bridge_from_plain({"version": "1", "commands": {"x": {"container": "a",
                                                                   "exec": "x"}},
                                "sidecar": {"limits": {"gate": {"memory": "512m"}}}})
    assert bridge.stack.limits.gate == Limit(512 << 20, 64)


MODEL: dict[str, Any] = {"name": "demo", "services": {
    "free": {"image": "busybox"},
    "tight": {"image": "busybox", "mem_limit": "268435456", "pids_limit": 50},
    "loose": {"image": "busybox", "mem_limit": "17179869184", "pids_limit": -1},
    "deployed": {"image": "busybox", "deploy": {"resources": {"limits": {
        "memory": "8589934592", "pids": 20}, "reservations": {"memory": "1048576"}}}},
    "other": {"image": "busybox"},
}}


def test_routed_limit_is_a_ceiling_in_both_spellings() -> None:
    before = json.dumps(MODEL, sort_keys=True)
    out = limit_routed(MODEL, ["free", "tight", "loose", "deployed", "missing"],
                       Limit(memory=2 << 30, pids=512))
    assert json.dumps(MODEL, sort_keys=True) == before  # a copy
    services = out["services"]
    assert (services["free"]["mem_limit"], services["free"]["pids_limit"]) == \
        (str(2 << 30), 512)
    assert (services["tight"]["mem_limit"], services["tight"]["pids_limit"]) == \
        ("268435456", 50)  # lower already: kept
    assert (services["loose"]["mem_limit"], services["loose"]["pids_limit"]) == \
        (str(2 << 30), 512)  # -1 is no limit
    deployed = services["deployed"]
    assert (deployed["mem_limit"], deployed["pids_limit"]) == (str(2 << 30), 20)
    assert deployed["deploy"]["resources"]["limits"] == {"memory": str(2 << 30), "pids": 20}
    assert deployed["deploy"]["resources"]["reservations"] == {"memory": "1048576"}
    assert services["other"] == {"image": "busybox"}
    assert "missing" not in services
    only_pids = limit_routed(MODEL, ["free"], Limit(pids=64))["services"]["free"]
    assert only_pids == {"image": "busybox", "pids_limit": 64}


def test_compose_takes_the_limited_model(tmp_path: Path, compose_cli: list[str]) -> None:
    """What `sidecar up` hands compose on stdin: compose reads both spellings as one value."""
    out = limit_routed(MODEL, ["free", "deployed"], Limit(memory=2 << 30, pids=512))
    result = subprocess.run([*compose_cli, "-p", "demo", "-f", "-", "config", "--format",
                             "json"], input=json.dumps(out), capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["free"]["mem_limit"] == str(2 << 30)
    assert services["free"]["pids_limit"] == 512
    assert services["deployed"]["deploy"]["resources"]["limits"]["pids"] == 20
