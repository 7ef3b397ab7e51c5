"""Session names, the state folder and the records in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar_gen.errors import ExitCode
from sidecar_gen.session.store import (
    SessionError,
    SessionRecord,
    SessionStore,
    all_records,
    check_name,
    record_for_path,
    session_project,
    state_home,
)


@pytest.mark.parametrize("name", ["a", "fix-login", "issue_42", "0day", "x" * 32])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(("name", "message"), [
    ("", "needs a name"),
    ("Fix", "not a valid compose project name.*did you mean 'fix'"),
    ("-x", "starting with a letter or digit"),
    ("_x", "starting with a letter or digit"),
    ("a.b", "not a valid compose project name"),
    ("a/b", "not a valid compose project name"),
    ("a b", "not a valid compose project name"),
    ("ü", "not a valid compose project name"),
    ("x" * 33, "longer than 32"),
])
def test_invalid_names_are_usage_errors(name: str, message: str) -> None:
    with pytest.raises(SessionError, match=message) as caught:
        check_name(name)
    assert caught.value.exit_code is ExitCode.USAGE
    assert "\n" not in caught.value.message


def test_session_project_and_its_length() -> None:
    assert session_project("shop", "fix") == "shop-fix"
    with pytest.raises(SessionError, match="longer than 63"):
        session_project("p" * 40, "x" * 30)


def test_state_home_follows_xdg() -> None:
    assert state_home({"XDG_STATE_HOME": "/s"}) == Path("/s/claude-sidecar")
    assert state_home({"HOME": "/h"}) == Path("/h/.local/state/claude-sidecar")
    assert state_home({"HOME": "/h", "XDG_STATE_HOME": "relative"}) == \
        Path("/h/.local/state/claude-sidecar")


def record(tmp_path: Path, name: str, created: str = "2026-01-01T00:00:00Z") -> SessionRecord:
    return SessionRecord(name=name, project="shop", compose_project=f"shop-{name}",
                         source=str(tmp_path / "shop"), worktree=str(tmp_path / "wt" / name),
                         subdir="app", branch=f"sidecar/{name}", base="0" * 40, created=created)


def test_store_round_trip_private_modes_and_lookup(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    source = tmp_path / "shop"
    source.mkdir()
    store = SessionStore(source, env)
    folder = store.create("b", "shop")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert folder.parent.name.startswith("shop-")
    store.save(record(tmp_path, "b", "2026-01-02T00:00:00Z"))
    store.create("a", "shop")
    store.save(record(tmp_path, "a"))
    assert (folder / "session.json").stat().st_mode & 0o777 == 0o600
    assert [r.name for r in store.records()] == ["a", "b"]
    assert store.load("b").project_dir == tmp_path / "wt" / "b" / "app"
    with pytest.raises(SessionError, match="exists"):
        store.create("a", "renamed-project")
    with pytest.raises(SessionError, match=r"no session 'c' .*sessions: a, b"):
        store.load("c")
    # Another folder of the same name elsewhere is another project.
    other = tmp_path / "elsewhere" / "shop"
    other.mkdir(parents=True)
    assert SessionStore(other, env).records() == []
    assert [r.name for r in all_records(env)] == ["a", "b"]
    inside = tmp_path / "wt" / "a" / "app" / "src"
    inside.mkdir(parents=True)
    found = record_for_path(inside, env)
    assert found is not None and found.name == "a"
    assert record_for_path(tmp_path, env) is None
    store.delete("a")
    assert [r.name for r in store.records()] == ["b"]


def test_a_damaged_record_is_skipped_in_lists_and_named_when_loaded(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    store = SessionStore(tmp_path, env)
    folder = store.create("a", "shop")
    (folder / "session.json").write_text('{"version": 99}')
    assert store.records() == []
    with pytest.raises(SessionError, match="not a session record"):
        store.load("a")
