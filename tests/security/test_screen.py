"""Nothing the agent writes can forge what sidecar shows on a terminal.

The agent writes the project's files. Each command's output for hostile input (YAML keys and
values carrying clear-screen, cursor-up, erase-line, a window title, bidi overrides, zero-width
joiners, 100 KB lines; `.env` `COMPOSE_*` values; file names) is rendered on a terminal
emulator (pyte): the screen must be exactly the text, with every control shown escaped, and
the dangerous setting on it. Before the fix, the approval screen showed a harmless diff while
`services.app.volumes: ["/:/host"]` was being approved (tests/security/test_screen_engine.py
shows what that gave the agent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from screen import lines, on_a_terminal, render
from trust.conftest import compose_config, write_project

__all__ = ["compose_config"]  # fixtures

SIDECAR = str(Path(sys.executable).parent / "sidecar")
NO_ENGINE = "unix:///nonexistent/docker.sock"

CLEAR = "\x1b[2J\x1b[3J\x1b[H"
MODEL = "effective compose model (docker compose config)"
# What the user saw instead of the real diff: a relabelled service.
FORGED = (f"changed  {MODEL}\n--- a/{MODEL} (approved)\n+++ b/{MODEL} (now)\n"
          "@@ -13,0 +14 @@\n+services.app.labels.tier")
FORGE_KEY = f"{CLEAR}{FORGED}"  # under `x-zz`, printed last: it wipes the rest
HOSTILE_LABELS = {
    "up\x1b[1A\x1b[2K": "erase the line above",
    "title\x1b]0;approved\x07": "window title",
    "bidi\u202e": "\u202etsoh/:/\u2066",
    "zwj\u200d\u200b": "a\u200db\ufeffc",
    "c1\x9b2J": "del\x7f",
    "long": "L" * 100_000,
}
OVERRIDE = (
    "services:\n  app:\n"
    '    volumes: ["/:/host"]\n'
    "    labels:\n"
    + "".join(f"      {json.dumps(k)}: {json.dumps(v)}\n" for k, v in HOSTILE_LABELS.items())
    + f"x-zz:\n  {json.dumps(FORGE_KEY)}: x\n")
DOTENV = ("DB_PASSWORD=hunter2-secret\n"
          "COMPOSE_NOTE=\x1b[2J\x1b[Hnothing to see\u202e\n")


def hostile_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a project under test: its own state folder, no engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update({"XDG_STATE_HOME": str(tmp_path / "state"), "FROM_SHELL": "x",
                "DOCKER_HOST": NO_ENGINE})
    return env


@pytest.fixture
def hostile(tmp_path: Path, compose_config: None) -> tuple[Path, dict[str, str]]:
    """An approved project, then the agent's override file and `.env`."""
    root = write_project(tmp_path / "demo")
    env = hostile_env(tmp_path)
    approved = subprocess.run([SIDECAR, "trust", "--yes"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)
    assert approved.returncode == 0, approved.stderr
    (root / "compose.override.yaml").write_text(OVERRIDE)
    (root / ".env").write_text(DOTENV)
    return root, env


def _shown_escaped(screen: list[str]) -> None:
    """Every hostile piece is on the screen, visibly, and the dangerous setting too."""
    text = "\n".join(screen)
    assert '+services.app.volumes[1].source: "/"' in screen
    assert '+services.app.volumes[1].target: "/host"' in screen
    assert '+    volumes: ["/:/host"]' in screen
    assert "+x-zz.\\x1b[2J\\x1b[3J\\x1b[Hchanged  effective" in text
    for shown in ("up\\x1b[1A\\x1b[2K", "title\\x1b]0;approved\\x07", "bidi\\u202e",
                  "\\u202etsoh/:/\\u2066", "zwj\\u200d\\u200b", "a\\u200db\\ufeffc",
                  "c1\\x9b2J", "del\\x7f", "COMPOSE_NOTE=\\x1b[2J\\x1b[Hnothing to see\\u202e"):
        assert shown in text, shown
    longest = max(screen, key=len)
    assert longest.endswith("…(+99000 characters)") or longest.endswith("characters)")
    assert len(longest) < 1100


def test_the_approval_screen_shows_what_is_approved(
        hostile: tuple[Path, dict[str, str]]) -> None:
    """`sidecar trust` on a terminal: the screen is the text, the volume `/:/host` is on it;
    so the user reading it declines, and nothing is approved."""
    root, env = hostile
    output, code = on_a_terminal([SIDECAR, "trust"], root, env, answer=b"n\n")
    screen = render(output)
    assert screen == lines(output), "a control sequence reached the terminal"
    _shown_escaped(screen)
    assert screen[-1].startswith("sidecar: error: not approved")
    assert code == 1


def test_up_refuses_with_the_same_visible_diff(hostile: tuple[Path, dict[str, str]]) -> None:
    root, env = hostile
    up = subprocess.run([SIDECAR, "up"], cwd=root, env=env, capture_output=True, text=True,
                        timeout=120)
    assert up.returncode == 1
    screen = render(up.stdout)
    assert screen == lines(up.stdout)
    _shown_escaped(screen)
    assert render(up.stderr) == [
        "sidecar: error: changed since you approved it: .env, compose.override.yaml; review "
        "the diff above, then `sidecar trust` to approve it"]


def test_a_hostile_file_name_is_shown_escaped(hostile: tuple[Path, dict[str, str]]) -> None:
    """A compose file the agent named (through COMPOSE_FILE in `.env`) is named visibly."""
    root, env = hostile
    name = "x\x1b[2J\x1b[H\u202eevil.yaml"
    (root / name).write_text('services:\n  app:\n    cap_add: ["SYS_ADMIN"]\n')
    (root / ".env").write_text(f"COMPOSE_FILE=compose.yaml:{name}\n")
    up = subprocess.run([SIDECAR, "up"], cwd=root, env=env, capture_output=True, text=True,
                        timeout=120)
    assert up.returncode == 1, up.stderr
    screen = render(up.stdout)
    assert screen == lines(up.stdout)
    assert "new      x\\x1b[2J\\x1b[H\\u202eevil.yaml" in screen
    assert '+services.app.cap_add[0]: "SYS_ADMIN"' in screen
    assert render(up.stderr) == lines(up.stderr)
    assert "x\\x1b[2J\\x1b[H\\u202eevil.yaml" in up.stderr


def test_validate_findings_quote_keys_escaped(tmp_path: Path) -> None:
    bridge = tmp_path / "bridge.yaml"
    bridge.write_text(
        'version: "1"\ncommands:\n'
        f'  {json.dumps("php" + CLEAR + "ok  all valid")}:\n    container: app\n'
        f'    exec: {json.dumps("x" * 100_000)}\n    unknown{json.dumps(chr(0x202e))}: 1\n'
        f'  {json.dumps("n" + chr(0x200d) + "pm")}:\n    container: 7\n')
    ran = subprocess.run([SIDECAR, "validate", str(bridge)], capture_output=True, text=True,
                         env=hostile_env(tmp_path), timeout=60)
    assert ran.returncode == 1
    screen = render(ran.stdout)
    assert screen == lines(ran.stdout)
    text = "\n".join(screen)
    assert "php\\x1b[2J\\x1b[3J\\x1b[Hok  all valid" in text
    assert "n\\u200dpm" in text
    assert max(len(row) for row in screen) < 1200


def test_init_quotes_what_compose_said_escaped(tmp_path: Path, compose_config: None) -> None:
    """A service name compose rejects is quoted in compose's error, which init prints; in the
    bridge.yaml init writes, it stays inside its comment (a line break there once added keys)."""
    root = tmp_path / "app"
    root.mkdir()
    name = "web\nx: 1" + CLEAR + "read compose.yaml (project app, 1 services)\u202e"
    (root / "compose.yaml").write_text(f"services:\n  {json.dumps(name)}:\n    image: php:8\n"
                                       '    volumes: ["./:/var/www/html"]\n')
    ran = subprocess.run([SIDECAR, "init", "--dir", str(root), "--no-probe"],
                         capture_output=True, text=True, env=hostile_env(tmp_path), timeout=120)
    screen = render(ran.stdout + ran.stderr)
    assert screen == lines(ran.stdout + ran.stderr)
    assert "\x1b" not in ran.stdout + ran.stderr and "\u202e" not in ran.stdout + ran.stderr
    assert "\\x1b[2J" in "\n".join(screen)
    from ruamel.yaml import YAML

    written = YAML(typ="safe").load((root / ".sidecar" / "bridge.yaml").read_text())
    assert set(written) == {"version", "commands", "sidecar"}, written
    assert written["commands"]["php"]["container"] == name


def test_session_ls_shows_names_and_paths_escaped(tmp_path: Path, docker_client: object) -> None:
    """A session whose folder's name holds escapes (a checkout named by someone else)."""
    from sidecar_gen.session.store import SessionRecord, SessionStore

    env = hostile_env(tmp_path)
    env.pop("DOCKER_HOST")  # the states come from the engine
    source = tmp_path / "shop\x1b[2J\x1b[H\u202e"
    source.mkdir()
    store = SessionStore(source, env)
    store.create("a", "shop")
    store.save(SessionRecord(
        name="a", project="shop", compose_project="shop-a", source=str(source),
        worktree=str(tmp_path / "shop\x1b[2J\x1b[H\u202e.sessions" / "a"), subdir="",
        branch="sidecar/a", base="0" * 40, created="2026-01-01T00:00:00Z"))
    ran = subprocess.run([SIDECAR, "session", "ls", "--all"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    screen = render(ran.stdout)
    assert screen == lines(ran.stdout)
    assert screen[1].endswith("shop\\x1b[2J\\x1b[H\\u202e.sessions/a"), screen
    assert "absent, worktree missing" in screen[1]
