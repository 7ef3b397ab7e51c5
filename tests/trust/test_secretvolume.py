"""The broker's secret on its way from `sidecar up` (pure parts; the engine side is proven in
tests/broker/test_stack.py)."""

from __future__ import annotations

import io
import json
import tarfile

from sidecar_gen.auth import Resolved, Source
from sidecar_gen.broker.credentials import PLACEHOLDER
from sidecar_gen.compose.cli import ResolvedModel
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import BROKER_UID, SECRETS_VOLUME
from sidecar_gen.trust import secretvolume
from sidecar_gen.trust.startmodel import with_placeholder

KEY = "sk-ant-api03-REAL-unit-key-0123456789"


def test_every_kind_is_written_the_ones_not_held_empty() -> None:
    files = secretvolume.secret_files(Resolved(Source("api-key", "environment", KEY), None))
    assert files == {"api-key": KEY.encode() + b"\n", "oauth-token": b"", "github-token": b""}
    with tarfile.open(fileobj=io.BytesIO(secretvolume.archive(files))) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == set(files)
    for kind in files:
        member = members[kind]
        # Only the broker's user can read them, and nobody can write them.
        assert (member.uid, member.gid, member.mode) == (BROKER_UID, BROKER_UID, 0o400)


def _model(**services: dict[str, object]) -> dict[str, object]:
    return {"name": "p", "services": services, "volumes": {SECRETS_VOLUME: {}}}


def _role(role: str, **spec: object) -> dict[str, object]:
    return {"labels": {contract.ROLE_LABEL: role}, **spec}


def test_only_the_broker_may_mount_the_secrets_read_only() -> None:
    mount = {"type": "volume", "source": SECRETS_VOLUME, "target": "/x", "read_only": True}
    assert secretvolume.design_problems(_model(b=_role(contract.ROLE_BROKER,
                                                       volumes=[mount]))) == []
    problems = secretvolume.design_problems(_model(
        b=_role(contract.ROLE_BROKER, volumes=[{**mount, "read_only": False}]),
        claude=_role(contract.ROLE_CLAUDE, volumes=[mount]), app={"volumes": [mount]}))
    assert problems == [
        f"service app mounts `{SECRETS_VOLUME}` (only the broker may: it holds the real "
        "credential)",
        f"service b mounts `{SECRETS_VOLUME}` read-write",
        f"service claude mounts `{SECRETS_VOLUME}` (only the broker may: it holds the real "
        "credential)"]
    socket = {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}
    assert secretvolume.design_problems(_model(b=_role(contract.ROLE_BROKER,
                                                       volumes=[mount, socket]))) == [
        "service b (broker) mounts an engine socket (/var/run/docker.sock)"]
    external = _model()
    external["volumes"] = {SECRETS_VOLUME: {"external": True}}
    assert secretvolume.design_problems(external)


def test_claude_gets_the_placeholder_of_the_kind_in_force() -> None:
    claude = _role(contract.ROLE_CLAUDE, environment={"ANTHROPIC_BASE_URL": "http://b:8080",
                                                      "ANTHROPIC_API_KEY": "stale"})
    doc = _model(claude=claude, other={"environment": {"ANTHROPIC_BASE_URL": "x"}})
    model = ResolvedModel(json.dumps(doc), doc)
    oauth = with_placeholder(model, "oauth-token").doc["services"]
    assert oauth["claude"]["environment"] == {
        "ANTHROPIC_BASE_URL": "http://b:8080",
        "CLAUDE_CODE_OAUTH_TOKEN": PLACEHOLDER["oauth-token"]}
    assert oauth["other"] == doc["services"]["other"]  # not ours: untouched
    default = with_placeholder(model, None).doc["services"]["claude"]["environment"]
    assert default["ANTHROPIC_API_KEY"] == PLACEHOLDER["api-key"]
    # Without the broker (no ANTHROPIC_BASE_URL) nothing is added.
    plain = _model(claude=_role(contract.ROLE_CLAUDE, environment={"ANTHROPIC_API_KEY": None}))
    assert with_placeholder(ResolvedModel(json.dumps(plain), plain), "api-key").doc == plain
