"""The guard on the CLI's output: a field that escaped nobody's attention still cannot steer the
terminal, while sidecar's own colours work on a terminal and NO_COLOR turns them off."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from runtime.conftest import PtyRun
from screen import lines, render
from typer.testing import CliRunner

from sidecar_gen.cli import app
from sidecar_gen.cli.output import PALETTE, GuardedStream, guarded

HOSTILE = "\x1b[2J\x1b[H\x1b]0;title\x07\x1b[8mhidden\x1b[0m\u202egnp.\u200d\x9b1A"


def test_guard_escapes_everything_but_our_colours() -> None:
    assert guarded("line\n", colors=True) == "line\n"
    assert guarded(HOSTILE + "\n", colors=False) == (
        "\\x1b[2J\\x1b[H\\x1b]0;title\\x07\\x1b[8mhidden\\x1b[0m\\u202egnp.\\u200d\\x9b1A\n")
    # With colours, exactly our five codes pass; conceal (8m), the rest, everything else not.
    assert guarded(HOSTILE, colors=True) == (
        "\\x1b[2J\\x1b[H\\x1b]0;title\\x07\\x1b[8mhidden\x1b[0m\\u202egnp.\\u200d\\x9b1A")
    for code in PALETTE:
        assert guarded(f"{code}x", colors=True) == f"{code}x"
        assert guarded(f"{code}x", colors=False) == code.replace("\x1b", "\\x1b") + "x"


def test_guarded_stream_is_a_text_stream_without_a_buffer() -> None:
    inner = io.StringIO()
    stream = GuardedStream(inner, colors=False)  # type: ignore[arg-type]
    assert stream.write("a\x1bb\n") == 4
    assert inner.getvalue() == "a\\x1bb\n"
    with pytest.raises(TypeError):
        stream.write(b"")  # type: ignore[arg-type]
    assert not hasattr(stream, "buffer")


def test_a_missed_field_is_escaped_by_the_guard() -> None:
    """A command that forgot to escape (typer.echo of raw data) still prints it escaped."""
    probe = typer.Typer()

    @probe.callback()
    def root() -> None:
        from sidecar_gen.cli import output

        output.install()

    @probe.command()
    def leak() -> None:
        typer.echo(f"echo: {HOSTILE}")  # (click strips some sequences itself off a terminal)
        typer.echo(f"err: {HOSTILE}", err=True)
        sys.stdout.write(f"raw: {HOSTILE}\n")

    result = CliRunner().invoke(probe, ["leak"])
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert render(result.stdout)[1] == (
        "raw: \\x1b[2J\\x1b[H\\x1b]0;title\\x07\\x1b[8mhidden\\x1b[0m\\u202egnp.\\u200d\\x9b1A")
    assert len(render(result.stdout)) == 2


def test_error_lines_quote_names_escaped(tmp_path: Path, sidecar_cli: list[str]) -> None:
    """`sidecar: error: ...` quoting a file name the agent chose: one visible line."""
    import subprocess

    name = tmp_path / "evil\x1b[2J\x1b[1;1Hok\u202e.yaml"
    ran = subprocess.run([*sidecar_cli, "validate", str(name)], capture_output=True, text=True)
    assert ran.returncode == 2
    shown = str(name).replace("\x1b", "\\x1b").replace("\u202e", "\\u202e")
    assert render(ran.stderr) == [f"sidecar: error: {shown}: no such file"]


def _validate_on_a_pty(bad: Path, sidecar_cli: list[str], env: dict[str, str]) -> bytes:
    run = PtyRun([*sidecar_cli, "validate", str(bad)], env, cols=200)
    assert run.wait() == 1
    return run.output


def test_colours_on_a_terminal_and_never_a_hostile_escape(tmp_path: Path,
                                                          sidecar_cli: list[str]) -> None:
    bad = tmp_path / "bridge.yaml"
    bad.write_text('version: "1"\ncommands:\n  "x\\e[2J\\e[8m\\u202e":\n    container: 7\n')
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    colored = _validate_on_a_pty(bad, sidecar_cli, base)
    assert b"\x1b[31merror\x1b[0m" in colored
    assert b"\x1b[2J" not in colored and b"\x1b[8m" not in colored
    assert "\u202e".encode() not in colored
    assert "x\\x1b[2J\\x1b[8m\\u202e" in colored.decode()
    plain = _validate_on_a_pty(bad, sidecar_cli, {**base, "NO_COLOR": "1"})
    assert b"\x1b" not in plain
    screen = render(plain, columns=200)
    assert any("x\\x1b[2J\\x1b[8m\\u202e" in row for row in screen), screen


def test_in_process_commands_are_guarded_too() -> None:
    result = CliRunner().invoke(app, ["validate", "/nonexistent/\x1b[2Jx.yaml"])
    assert result.exit_code == 2
    assert "\x1b" not in result.output
    assert "/nonexistent/\\x1b[2Jx.yaml" in result.output


def test_the_dispatchers_own_lines_are_escaped(tmp_path: Path, sidecar_cli: list[str]) -> None:
    """`sidecar exec NAME` quoting a name that is not routed: one visible line."""
    import subprocess

    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  php:\n    container: app\n    exec: php\n')
    name = "x\x1b[2J\x1b]0;t\x07\u202e"
    ran = subprocess.run([*sidecar_cli, "exec", "--config", str(config), name],
                         capture_output=True, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert ran.returncode == 127
    assert render(ran.stderr) == [
        f"sidecar: x\\x1b[2J\\x1b]0;t\\x07\\u202e: not a routed command in {config}"]


def test_the_gates_own_lines_are_escaped(tmp_path: Path, sidecar_cli: list[str]) -> None:
    """`sidecar proxy`'s notices (what `docker compose logs sidecar-gate` shows) quoting a
    policy file the agent shaped: visible lines."""
    import socket
    import subprocess
    import time

    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  "php\\e[2J\\e[H\\u202e":\n    container: 7\n')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gate = subprocess.Popen([*sidecar_cli, "proxy", "--listen", f"tcp://127.0.0.1:{port}",
                             "--upstream", "unix:///nonexistent/docker.sock", "--config",
                             str(config)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        err = b""
        while b"listening on" not in err and time.monotonic() < deadline:
            line = gate.stderr.readline()  # type: ignore[union-attr]
            if not line:
                break
            err += line
    finally:
        gate.terminate()
        gate.wait(timeout=30)
    text = err.decode()
    assert "listening on" in text, text
    assert "\x1b" not in text and "\u202e" not in text, text
    assert render(text) == lines(text)
    assert "php\\x1b[2J\\x1b[H\\u202e" in text, text


@given(st.text())
def test_nothing_but_our_colours_leaves_the_guard(text: str) -> None:
    assert guarded(text, colors=False).replace("\n", "").isprintable()
    shown = guarded(text, colors=True)
    for code in PALETTE:
        shown = shown.replace(code, "")
    assert shown.replace("\n", "").isprintable()
    assert guarded(text, colors=False).count("\n") == text.count("\n")
