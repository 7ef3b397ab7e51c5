"""The model comparison and its diff: compose decides what changed, the diff names the files,
and no secret from the environment or `.env` is ever stored or shown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sidecar_gen.compose.cli import ComposeTarget
from sidecar_gen.trust.compare import Comparison, compare, flatten
from sidecar_gen.trust.record import ApprovalStore
from sidecar_gen.trust.snapshot import take_snapshot

SECRETS = ("hunter2-secret", "shell-secret")


def approve(target: ComposeTarget, store: ApprovalStore) -> None:
    store.save(take_snapshot(target, store).approval())


def now(target: ComposeTarget, store: ApprovalStore) -> Comparison:
    return compare(store.load(target.directory), take_snapshot(target, store))


def kinds(comparison: Comparison) -> dict[str, str]:
    return {change.name: change.kind for change in comparison.files}


def test_first_use_lists_everything_and_then_nothing_changed(target: ComposeTarget,
                                                             store: ApprovalStore) -> None:
    first = now(target, store)
    assert first.first_use and first.changed
    assert {"compose.yaml", ".env", ".sidecar/compose.yml", ".sidecar/bridge.yaml",
            ".sidecar/allowed-domains.txt"} <= set(kinds(first))
    assert set(kinds(first).values()) == {"new"}
    approve(target, store)
    second = now(target, store)
    assert not second.changed and second.files == [] and second.text() == ""


def test_a_comment_is_no_change_but_is_named(target: ComposeTarget, store: ApprovalStore) -> None:
    approve(target, store)
    path = target.directory / "compose.yaml"
    path.write_text("# a comment\n" + path.read_text())
    result = now(target, store)
    assert not result.changed
    assert kinds(result) == {"compose.yaml": "changed"}
    assert "+# a comment" in result.text()


def test_secrets_are_never_stored_yet_their_changes_count(target: ComposeTarget,
                                                          store: ApprovalStore) -> None:
    approve(target, store)
    record = next(store.root.glob("projects/*/approval.json")).read_text()
    for secret in SECRETS:
        assert secret not in record
    (target.directory / ".env").write_text("DB_PASSWORD=hunter3-secret\n")
    result = now(target, store)
    assert result.changed and result.model_changed
    assert kinds(result) == {".env": "changed"}
    text = result.text()
    assert "-services.app.environment.PASSWORD: \"hmac-sha256:" in text
    assert "+services.app.environment.PASSWORD: \"hmac-sha256:" in text
    assert "hunter" not in text
    assert "-DB_PASSWORD=hmac-sha256:" in text


def test_a_changed_shell_variable_changes_the_model(target: ComposeTarget,
                                                    store: ApprovalStore) -> None:
    approve(target, store)
    env = {**target.environ(), "SHELL_TOKEN": "another"}
    result = now(replace(target, env=env), store)
    assert result.changed and result.files == []
    assert "services.app.environment.SHELL_TOKEN" in result.model_diff()
    assert "shell-secret" not in result.model_diff() and "another" not in result.model_diff()


def test_a_new_override_file(target: ComposeTarget, store: ApprovalStore) -> None:
    approve(target, store)
    (target.directory / "compose.override.yaml").write_text(
        "services:\n  claude:\n    privileged: true\n")
    result = now(target, store)
    assert result.changed
    assert kinds(result) == {"compose.override.yaml": "new"}
    assert "new      compose.override.yaml" in result.summary()
    assert "+services.claude.privileged: true\n" in result.text()
    assert "+++ b/compose.override.yaml" in result.text()


def test_compose_file_in_dotenv(target: ComposeTarget, store: ApprovalStore) -> None:
    approve(target, store)
    (target.directory / "evil.yml").write_text("services:\n  app:\n    privileged: true\n")
    (target.directory / ".env").write_text(
        "DB_PASSWORD=hunter2-secret\nCOMPOSE_FILE=compose.yaml:evil.yml\n")
    result = now(target, store)
    assert result.changed
    assert kinds(result) == {".env": "changed", "evil.yml": "new"}
    assert "+COMPOSE_FILE=compose.yaml:evil.yml" in result.text()
    assert "+services.app.privileged: true" in result.text()


def test_the_environment_beats_dotenv_for_compose_file(target: ComposeTarget,
                                                       store: ApprovalStore) -> None:
    approve(target, store)
    (target.directory / ".env").write_text(
        "DB_PASSWORD=hunter2-secret\nCOMPOSE_FILE=compose.yaml:evil.yml\n")
    (target.directory / "evil.yml").write_text("services:\n  app:\n    privileged: true\n")
    env = {**target.environ(), "COMPOSE_FILE": "compose.yaml"}
    result = now(replace(target, env=env), store)
    assert not result.model_changed  # compose ignores .env's COMPOSE_FILE here, and so do we
    assert set(kinds(result)) == {".env"}


def test_included_and_env_files_are_named(target: ComposeTarget, store: ApprovalStore) -> None:
    root = target.directory
    (root / "extra.yml").write_text("services:\n  db:\n    image: busybox\n"
                                    "    env_file: [db.env]\n")
    (root / "db.env").write_text("DB_ROOT_PASSWORD=also-secret\n")
    text = (root / "compose.yaml").read_text()
    (root / "compose.yaml").write_text(text + "  - extra.yml\n")
    approve(target, store)
    record = next(store.root.glob("projects/*/approval.json")).read_text()
    assert "also-secret" not in record
    (root / "db.env").write_text("DB_ROOT_PASSWORD=changed-secret\n")
    result = now(target, store)
    assert result.changed and kinds(result) == {"db.env": "changed"}
    assert "also-secret" not in result.text() and "changed-secret" not in result.text()
    assert "-DB_ROOT_PASSWORD=hmac-sha256:" in result.text()
    (root / "db.env").write_text("DB_ROOT_PASSWORD=also-secret\n")
    (root / "extra.yml").write_text("services:\n  db:\n    image: busybox\n    privileged: true\n"
                                    "    env_file: [db.env]\n")
    result = now(target, store)
    assert kinds(result) == {"extra.yml": "changed"}
    assert "+services.db.privileged: true" in result.text()


def test_the_policy_counts_byte_for_byte(target: ComposeTarget, store: ApprovalStore) -> None:
    approve(target, store)
    path = target.directory / ".sidecar" / "allowed-domains.txt"
    path.write_text(path.read_text() + "# only a comment\n")
    result = now(target, store)
    assert result.changed and not result.model_changed
    assert result.policy == ["allowed-domains.txt"]
    assert kinds(result) == {".sidecar/allowed-domains.txt": "changed"}


def test_a_compose_upgrade_is_mentioned(target: ComposeTarget, store: ApprovalStore) -> None:
    snapshot = take_snapshot(target, store)
    store.save(replace(snapshot.approval(), compose_version="2.0.0",
                       model={**snapshot.model, "x-old": 1}))
    result = now(target, store)
    assert result.model_changed
    assert any("Docker Compose was 2.0.0 at approval" in line for line in result.summary())


def test_flatten_names_each_setting() -> None:
    doc = {"services": {"a": {"ports": [{"target": 80}], "labels": {}, "x": None}}, "name": "p"}
    assert flatten(doc) == ["name: \"p\"", "services.a.labels: {}",
                            "services.a.ports[0].target: 80", "services.a.x: null"]


def test_files_outside_the_project_are_named_by_their_path(target: ComposeTarget,
                                                           store: ApprovalStore,
                                                           tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yml"
    outside.write_text("services:\n  app:\n    privileged: true\n")
    env = {**target.environ(), "COMPOSE_FILE": f"compose.yaml:{outside}"}
    other = replace(target, env=env)
    approve(target, store)
    result = now(other, store)
    assert kinds(result)[str(outside)] == "new"


def test_env_copies_mask_every_line_of_a_secret(tmp_path: Path) -> None:
    from sidecar_gen.trust.secrets import Masker

    store = ApprovalStore(tmp_path / "state")
    text = ("# comment\n\nCOMPOSE_FILE=a.yml\nKEY=\"-----BEGIN KEY-----\nsecret-body\n"
            "# not a comment: inside the value\n-----END KEY-----\"\nAPI_PASS=hidden\n"
            "export EXPORTED_TOKEN='single'\nnot an assignment\nPUID=1000\n"
            "NOTE=\"two\nlines\"\n")
    masked = Masker(store).env_text(text)
    lines = masked.splitlines()
    assert lines[:3] == ["# comment", "", "COMPOSE_FILE=a.yml"]
    assert lines[3].startswith("KEY=hmac-sha256:")
    for secret in ("BEGIN", "secret-body", "inside the value", "END", "hidden", "single",
                   "assignment"):
        assert secret not in masked, secret
    assert len(lines) == len(text.splitlines())
    assert lines[-5].startswith("EXPORTED_TOKEN=hmac-sha256:")
    assert lines[-3:] == ["PUID=1000", 'NOTE="two', 'lines"']
