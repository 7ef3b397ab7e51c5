"""Fixtures: a test CA, the scripted Messages API behind TLS, and real brokers in front of it.

The broker runs for real (in a thread of the test process, or as `sidecar broker` in a
subprocess or a container); only the upstream is a stand-in, and it records what arrived.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.standin import Recorded, Reply, StandIn, TestCA, text_reply
from sidecar_gen.broker import Broker, BrokerOptions

API_KEY = "sk-ant-api03-REAL-test-key-0123456789abcdefghij"
OAUTH = "sk-ant-oat01-REAL-test-oauth-0123456789abcdefghij"
GITHUB = "ghp_REALtestGitHubToken0123456789abcdef"
API_PLACEHOLDER = "sk-ant-api03-sidecar-broker-placeholder"
OAUTH_PLACEHOLDER = "sk-ant-oat01-sidecar-broker-placeholder"


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A CA made for this run, and a server certificate for localhost and 127.0.0.1."""
    return TestCA(tmp_path_factory.mktemp("ca"), names=("localhost", "upstream.test"))


@pytest.fixture
def standin(test_ca: TestCA) -> Iterator[StandIn]:
    """The scripted Messages API over TLS (a text answer unless the test scripts another)."""
    server = StandIn(lambda _r: text_reply("hello from the stand-in"), ca=test_ca)
    yield server
    server.close()


def write_secrets(folder: Path, **secrets: str) -> Path:
    """A secrets folder: one file per kind (`api_key=` -> api-key)."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, value in secrets.items():
        path = folder / kind.replace("_", "-")
        path.write_text(value + "\n")
        path.chmod(0o600)
    return folder


class RunningBroker:
    """A broker serving in a background thread; its audit record in a file."""

    def __init__(self, broker: Broker, log_path: Path) -> None:
        self.broker = broker
        self.log_path = log_path
        host, _, port = broker.address[len("tcp://"):].rpartition(":")
        self.host, self.port = host, int(port)
        self._thread = threading.Thread(target=broker.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_lines(self, at_least: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The audit lines, once there are `at_least` of them (a line is written right after
        the response's last byte, so a client may be a moment ahead of it)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [json.loads(line) for line in self.log_path.read_text().splitlines()
                     if line]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def log_text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        alive = self._thread.is_alive()
        self.broker.shutdown()
        self._thread.join(timeout=5)
        assert alive, "the broker's accept loop died during the test"


@pytest.fixture
def broker_factory(tmp_path: Path, standin: StandIn,
                   test_ca: TestCA) -> Iterator[Callable[..., RunningBroker]]:
    """Start brokers in front of the stand-in (API key by default); stopped afterwards."""
    started: list[RunningBroker] = []

    def start(*, secrets: dict[str, str] | None = None, **options: Any) -> RunningBroker:
        index = len(started)
        folder = write_secrets(tmp_path / f"secrets-{index}",
                               **(secrets if secrets is not None else {"api_key": API_KEY}))
        log_path = tmp_path / f"broker-{index}.log"
        options.setdefault("upstream", standin.url("localhost"))
        options.setdefault("ca_file", test_ca.ca_cert)
        broker = Broker(BrokerOptions(listen="tcp://127.0.0.1:0", secrets=folder,
                                      log=log_path.open("a", encoding="utf-8"), **options))
        running = RunningBroker(broker, log_path)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def broker(broker_factory: Callable[..., RunningBroker]) -> RunningBroker:
    """One broker with the test API key, in front of the stand-in."""
    return broker_factory()


def echo_script(record: Recorded) -> Reply:
    """An upstream that reflects every header it got, in headers and in the body (a hostile
    or careless upstream: what the broker masks)."""
    headers = [(f"x-echo-{i}", f"{k}: {v}") for i, (k, v) in enumerate(record.headers)]
    body = "\n".join(f"{k}: {v}" for k, v in record.headers).encode()
    return Reply(400, [("Content-Type", "text/plain"), *headers], [body], framing="length")
