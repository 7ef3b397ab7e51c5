"""Fixtures of the hostile-agent suite, shared with the suites they extend.

The claude-container attacks (test_container_*.py) run in the firewall suite's offline
internet (`internet`, `start_claude`: tests/firewall/conftest.py).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import TEST_LABEL, unique_name
from firewall.conftest import ECHO_SERVER, internet, start_claude

__all__ = ["host_server", "internet", "start_claude"]


@pytest.fixture
def host_server(docker_client: Any, claude_image: str) -> Iterator[tuple[Any, int, int, int]]:
    """An echo server in the Docker host's own network namespace: (container, open TCP port,
    closed TCP port, UDP port)."""
    for _ in range(10):
        ports = random.sample(range(20000, 60000), 3)
        server = docker_client.containers.run(
            claude_image, ["python3", "-c", ECHO_SERVER, f"tcp:{ports[0]}", f"tcp:{ports[1]}",
                           f"udp:{ports[2]}"],
            entrypoint=[], user="root", network_mode="host", detach=True,
            name=unique_name("sidecar-sec-host"), labels={TEST_LABEL: "1"})
        deadline = time.monotonic() + 30
        while b"listening" not in server.logs() and time.monotonic() < deadline:
            server.reload()
            if server.status == "exited":
                break  # a port was taken: try others
            time.sleep(0.1)
        if b"listening" in server.logs():
            break
        server.remove(force=True)
    else:
        pytest.fail("no free host ports for the test server")
    try:
        yield server, ports[0], ports[1], ports[2]
    finally:
        with contextlib.suppress(Exception):
            server.remove(force=True)
