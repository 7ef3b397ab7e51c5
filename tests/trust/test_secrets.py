"""Which values the approval keeps in clear: secrets by their name only,
approvals of the previous version still load, `--show-values` reveals the secrets on request."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust.compare import Comparison, compare
from sidecar_gen.trust.record import Approval, ApprovalStore, FileState
from sidecar_gen.trust.secrets import is_secret
from sidecar_gen.trust.snapshot import take_snapshot

COMPOSE = """\
name: demo
services:
  app:
    image: busybox:latest
    user: "${PUID}:${PGID}"
    environment:
      PUID: ${PUID}
      API_TOKEN: ${API_TOKEN}
      GREETING: hello
    build:
      context: .
      args: {USER_ID: "${PUID}", NPM_TOKEN: "${API_TOKEN}"}
include:
  - .sidecar/compose.yml
"""
DOTENV = "PUID=1000\nPGID=1001\nAPI_TOKEN=tok-old\n"


@pytest.fixture
def ids_project(target: ComposeTarget) -> ComposeTarget:
    (target.directory / "compose.yaml").write_text(COMPOSE)
    (target.directory / "Dockerfile").write_text("FROM busybox\n")
    (target.directory / ".env").write_text(DOTENV)
    return target


@pytest.mark.parametrize(("name", "secret"), [
    ("PUID", False), ("PGID", False), ("COMPOSE_FILE", False), ("SIDECAR_FIREWALL", False),
    ("APP_ENV", False), ("GREETING", False), ("ANTHROPIC_API_KEY", True), ("DB_PASSWORD", True),
    ("db_pass", True), ("GH_TOKEN", True), ("APP_SECRET", True), ("AWS_CREDENTIALS", True),
    ("BASIC_AUTH", True), ("auth_user", True), ("SIDECAR_TOKEN", True), ("COMPOSE_API_KEY", False),
    (None, True),
])
def test_the_name_rule(name: str | None, secret: bool) -> None:
    assert is_secret(name) is secret


def _now(target: ComposeTarget, store: ApprovalStore) -> Comparison:
    return compare(store.load(target.directory), take_snapshot(target, store))


def test_values_that_are_not_secrets_are_stored_and_shown_in_clear(ids_project: ComposeTarget,
                                                                   store: ApprovalStore) -> None:
    store.save(take_snapshot(ids_project, store).approval())
    record = next(store.root.glob("projects/*/approval.json")).read_text()
    doc = json.loads(record)
    env = doc["model"]["services"]["app"]["environment"]
    assert env["PUID"] == "1000" and env["GREETING"] == "hello"
    assert env["API_TOKEN"].startswith("hmac-sha256:")
    args = doc["model"]["services"]["app"]["build"]["args"]
    assert args["USER_ID"] == "1000" and args["NPM_TOKEN"].startswith("hmac-sha256:")
    assert "PUID=1000\nPGID=1001\nAPI_TOKEN=hmac-sha256:" in doc["files"][".env"]["text"]
    assert "tok-old" not in record
    (ids_project.directory / ".env").write_text("PUID=0\nPGID=0\nAPI_TOKEN=tok-new\n")
    result = _now(ids_project, store)
    text = result.text()
    for line in ("-PUID=1000", "+PUID=0", "-PGID=1001", "+PGID=0",
                 '-services.app.user: "1000:1001"', '+services.app.user: "0:0"',
                 '-services.app.environment.PUID: "1000"', '+services.app.environment.PUID: "0"',
                 '+services.app.build.args.USER_ID: "0"'):
        assert line in text.splitlines(), line
    assert "tok-old" not in text and "tok-new" not in text
    assert re.search(r"^\+API_TOKEN=hmac-sha256:[0-9a-f]{12}…$", text, re.M)


def test_show_values_reveals_the_secrets_now_and_only_on_request(ids_project: ComposeTarget,
                                                                 store: ApprovalStore) -> None:
    store.save(take_snapshot(ids_project, store).approval())
    (ids_project.directory / ".env").write_text("PUID=1000\nPGID=1001\nAPI_TOKEN=tok-new\x1b[2J\n")
    result = _now(ids_project, store)
    assert "tok-new" not in result.text()
    shown = result.text(show_values=True)
    assert re.search(r'^\+API_TOKEN=hmac-sha256:[0-9a-f]{12}…   \(now: "tok-new\\x1b\[2J"\)$',
                     shown, re.M), shown
    assert re.search(r'^\+services.app.environment.API_TOKEN: "hmac-sha256:[0-9a-f]{64}"   '
                     r'\(now: "tok-new\\x1b\[2J"\)$', shown, re.M), shown
    assert "tok-old" not in shown  # the approved value was never stored: only its digest


def _as_the_previous_version_stored_it(approval: Approval, store: ApprovalStore) -> Approval:
    """The record format 1 as written before the name rule: every environment and build-arg
    value a digest, every `.env` value but COMPOSE_* a 24-character digest."""
    def digest(value: object) -> str:
        return store.digest(str(value).encode())

    def old_text(text: str) -> str:
        out = []
        for line in text.split("\n"):
            key, sep, value = line.partition("=")
            if sep and not key.startswith("COMPOSE_") and not value.startswith("hmac-sha256:"):
                out.append(f"{key}={digest(value)[:24]}…")
            else:
                out.append(line)
        return "\n".join(out)

    model = json.loads(json.dumps(approval.model))
    app = model["services"]["app"]
    app["environment"] = {k: v if v is None or str(v).startswith("hmac-") else digest(v)
                          for k, v in app["environment"].items()}
    app["build"]["args"] = {k: v if str(v).startswith("hmac-") else digest(v)
                            for k, v in app["build"]["args"].items()}
    files = {name: FileState(state.digest, old_text(state.text))
             if name == ".env" and state.text else state
             for name, state in approval.files.items()}
    return replace(approval, model=model, files=files)


def test_an_approval_of_the_previous_version_still_matches(ids_project: ComposeTarget,
                                                           store: ApprovalStore) -> None:
    current = take_snapshot(ids_project, store).approval()
    old = _as_the_previous_version_stored_it(current, store)
    assert old.model != current.model  # PUID as a digest
    store.save(old)
    unchanged = _now(ids_project, store)
    assert not unchanged.changed and unchanged.files == [], unchanged.text()
    # The first change after the upgrade: the old value of what changed is its digest only
    # (unless another variable holds that value now: equal values have equal digests).
    (ids_project.directory / ".env").write_text("PUID=0\nPGID=1001\nAPI_TOKEN=tok-old\n")
    changed = _now(ids_project, store)
    lines = changed.text().splitlines()
    assert '+services.app.environment.PUID: "0"' in lines
    assert any(re.fullmatch(r'-services\.app\.environment\.PUID: "hmac-sha256:[0-9a-f]{64}"',
                            line) for line in lines), lines
    assert any(re.fullmatch(r"-PUID=hmac-sha256:[0-9a-f]{12}…", line) for line in lines)
    assert "+PUID=0" in lines
    assert not any(line.startswith(("-PGID", "+PGID", "-API_TOKEN")) for line in lines)


def test_old_records_load_from_disk(ids_project: ComposeTarget, store: ApprovalStore,
                                    tmp_path: Path) -> None:
    """The record file itself, as the previous version wrote it, is read (format 1)."""
    old = _as_the_previous_version_stored_it(take_snapshot(ids_project, store).approval(),
                                             store)
    path = store.save(old)
    assert json.loads(path.read_text())["format"] == 1
    assert store.load(ids_project.directory) is not None
