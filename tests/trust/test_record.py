"""The approval record: where it lives, what it holds, and that nobody else can plant one."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sidecar_gen.trust.record import (
    Approval,
    ApprovalStore,
    FileState,
    RecordError,
    record_dir,
    state_root,
)


def test_state_root_follows_xdg_and_ignores_a_relative_value(tmp_path: Path) -> None:
    assert state_root({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/u"}) == Path(
        "/srv/state/claude-sidecar")
    assert state_root({"XDG_STATE_HOME": "rel", "HOME": "/home/u"}) == Path(
        "/home/u/.local/state/claude-sidecar")
    assert state_root({"HOME": "/home/u"}) == Path("/home/u/.local/state/claude-sidecar")


def test_record_folder_is_keyed_by_the_real_path(tmp_path: Path) -> None:
    a, b = tmp_path / "one" / "app", tmp_path / "two" / "app"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(a)
    root = tmp_path / "state"
    assert record_dir(root, a) == record_dir(root, link)
    assert record_dir(root, a) != record_dir(root, b)
    assert record_dir(root, a).name.startswith("app-")
    odd = tmp_path / "we ird:name"
    odd.mkdir()
    assert record_dir(root, odd).name.startswith("we-ird-name-")


def _approval(project: Path) -> Approval:
    return Approval(project_dir=str(project), compose_project="demo",
                    model={"name": "demo"},
                    files={"compose.yaml": FileState("hmac-sha256:ab", "x: 1\n"),
                           "compose.override.yaml": FileState(None)},
                    policy={"bridge.yaml": "version: '1'\n"}, compose_version="2.22.0")


def test_save_and_load_round_trip_with_private_permissions(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    store = ApprovalStore(tmp_path / "state" / "claude-sidecar")
    assert store.load(project) is None
    path = store.save(_approval(project))
    loaded = store.load(project)
    assert loaded is not None
    assert loaded.files == _approval(project).files
    assert loaded.policy == {"bridge.yaml": "version: '1'\n"}
    assert loaded.approved_at.endswith("Z")
    doc = json.loads(path.read_text())
    assert doc["format"] == 1 and doc["files"]["compose.override.yaml"] is None
    for folder in (store.root, path.parent.parent, path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.digest(b"x")
    key = store.root / "key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_digests_are_keyed(tmp_path: Path) -> None:
    import hashlib

    one, two = ApprovalStore(tmp_path / "a"), ApprovalStore(tmp_path / "b")
    assert one.digest(b"hunter2") == one.digest(b"hunter2")
    assert one.digest(b"hunter2") != two.digest(b"hunter2")
    assert hashlib.sha256(b"hunter2").hexdigest() not in one.digest(b"hunter2")


def test_a_state_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state" / "claude-sidecar"
    root.mkdir(parents=True)
    root.chmod(0o777)
    with pytest.raises(RecordError, match="writable by other users"):
        ApprovalStore(root).load(tmp_path)


def test_a_state_folder_others_can_read_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "state" / "claude-sidecar"
    root.mkdir(parents=True)
    root.chmod(0o755)
    ApprovalStore(root).load(tmp_path)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_a_record_others_can_write_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    store = ApprovalStore(tmp_path / "state")
    path = store.save(_approval(project))
    os.chmod(path, 0o666)
    with pytest.raises(RecordError, match="refusing to use it"):
        store.load(project)


def test_a_broken_record_says_how_to_recover(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    store = ApprovalStore(tmp_path / "state")
    path = store.save(_approval(project))
    path.write_text('{"format": 99}')
    with pytest.raises(RecordError, match="run `sidecar trust` again"):
        store.load(project)
    path.write_text("not json")
    with pytest.raises(RecordError, match="run `sidecar trust` again"):
        store.load(project)
