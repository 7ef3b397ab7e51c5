"""`runtime/transport`: DOCKER_HOST parsed, and a failed connection in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar_gen.runtime import (
    transport,
)
from sidecar_gen.runtime.errors import DispatchError


@pytest.mark.parametrize(("value", "expected"), [
    (None, ("unix", "/var/run/docker.sock", 0)),
    ("", ("unix", "/var/run/docker.sock", 0)),
    ("unix:///run/x.sock", ("unix", "/run/x.sock", 0)),
    ("tcp://127.0.0.1:2375", ("tcp", "127.0.0.1", 2375)),
    ("tcp://gate:2375/", ("tcp", "gate", 2375)),
    ("tcp://[::1]:2375", ("tcp", "::1", 2375)),
    ("tcp://gate", ("tcp", "gate", 2375)),
])
def test_parse_host(value: str | None, expected: tuple[str, str, int]) -> None:
    assert transport.parse_host(value) == expected


@pytest.mark.parametrize("value", ["ssh://user@host", "npipe:////./pipe/docker", "unix://rel",
                                   "tcp://host:notaport", "tcp://:2375", "http://x:1"])
def test_parse_host_rejects(value: str) -> None:
    with pytest.raises(DispatchError) as info:
        transport.parse_host(value)
    assert info.value.exit_code == 125
    assert value in info.value.message


def test_connect_failure_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DispatchError) as info:
        transport.connect(("unix", str(tmp_path / "none.sock"), 0))
    assert "cannot reach the Docker engine at unix://" in info.value.message
    assert info.value.exit_code == 125
