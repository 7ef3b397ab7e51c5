"""Doctor's broker checks: the opt-out's warning, and the secret probe's search (run here on
files made for the test; in the claude container by tests/broker/test_stack.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.doctor import DoctorReport, Status
from sidecar_gen.doctor.brokercheck import OPT_OUT, run_broker_checks
from sidecar_gen.doctor.host import HostContext
from sidecar_gen.model import Bridge, CredentialBroker, Stack
from sidecar_gen.resources import program_text

KEY = "sk-ant-api03-REAL-doctor-key-0123456789abcdef"


def test_broker_false_warns_that_the_agent_can_read_a_credential(tmp_path: Path) -> None:
    report = DoctorReport(ComposeTarget(tmp_path, None, {}))
    bridge = Bridge(commands={}, stack=Stack(broker=CredentialBroker(enabled=False)))
    # Said without the engine too: the setting alone decides it.
    run_broker_checks(report, HostContext(client=None, bridge=bridge))
    (result,) = report.results
    assert (result.name, result.status) == ("broker", Status.WARN)
    assert OPT_OUT in result.message
    assert "a real credential is readable by the agent" in result.message


def _search(root: Path, secret: str, alphabet: str = "words") -> dict[str, object]:
    key = b"k" * 32
    digest = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
    ran = subprocess.run(
        [sys.executable, "-I", "-c", program_text("sidecar_gen.doctor.secretprobe"), "search",
         alphabet, key.hex(), str(len(secret)), digest, "--", str(root)],
        capture_output=True, text=True, timeout=60, check=True)
    assert secret not in ran.stdout
    return dict(json.loads(ran.stdout))


def test_the_probe_finds_the_secret_inside_other_text_and_nowhere_else(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "clean.json").write_text('{"key": "sk-ant-api03-placeholder"}\n')
    (tmp_path / "a" / "near.txt").write_text(KEY[:-1] + "X\n")  # one character off
    assert _search(tmp_path, KEY)["found"] == []
    (tmp_path / "a" / "leak.json").write_text(f'{{"primaryApiKey":"{KEY}"}}')
    (tmp_path / "glued.txt").write_text(f"Bearer{KEY}tail")  # inside a longer word
    found = _search(tmp_path, KEY)
    assert found["found"] == [str(tmp_path / "glued.txt"), str(tmp_path / "a" / "leak.json")]
    odd = "p@ss word!"[:4] + "=x:y;z"
    (tmp_path / "odd.txt").write_text(f"a{odd}b")
    assert str(tmp_path / "odd.txt") in _search(tmp_path, odd, "visible")["found"]  # type: ignore[operator]
