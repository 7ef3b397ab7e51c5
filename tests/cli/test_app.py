"""The CLI in-process (typer's runner) and as a real process: flags, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidecar_gen import __version__
from sidecar_gen.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
runner = CliRunner()


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"sidecar {__version__}\n"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "init", "schema"):
        assert command in result.output
    assert "--install-completion" in result.output


def test_schema_prints_the_shipped_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    on_disk = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "bridge.schema.json")
                         .read_text())
    assert schema == on_disk


DUPLICATE_LINES = [(6, 5, "duplicate-key"), (7, 3, "duplicate-key"), (10, 3, "key-not-string")]


def _reported(fmt: str, output: str) -> list[tuple[int, int, str]]:
    """(line, column, rule) of each finding, read back the way each format's consumer reads it."""
    if fmt == "text":
        found = re.findall(r"^[^:]+:(\d+):(\d+): error: .* \[([a-z-]+)\]$", output, re.M)
        return [(int(a), int(b), r) for a, b, r in found]
    if fmt == "github":
        found = re.findall(r"^::error file=[^,]+,line=(\d+),col=(\d+),title=([a-z-]+)::", output,
                           re.M)
        return [(int(a), int(b), r) for a, b, r in found]
    doc = json.loads(output)
    if fmt == "json":
        return [(f["line"], f["column"], f["rule"]) for f in doc["findings"]]
    results = doc["runs"][0]["results"]
    return [(r["locations"][0]["physicalLocation"]["region"]["startLine"],
             r["locations"][0]["physicalLocation"]["region"]["startColumn"], r["ruleId"])
            for r in results]


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_validate_formats_and_exit_code(fmt: str) -> None:
    bad = FIXTURES / "invalid" / "duplicates.yaml"
    result = runner.invoke(app, ["validate", "--format", fmt, str(bad)])
    assert result.exit_code == 1
    assert _reported(fmt, result.stdout) == DUPLICATE_LINES
    good = FIXTURES / "valid" / "original-readme.yaml"
    result = runner.invoke(app, ["validate", "-f", fmt, str(good)])
    assert result.exit_code == 0


def test_validate_usage_errors_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    # Nothing was read, so nothing is "valid": the one line is the error.
    assert result.output == f"sidecar: error: {tmp_path / 'nope.yaml'}: no such file\n"
    result = runner.invoke(app, ["validate", "--format", "xml", str(tmp_path)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a directory" in result.output


def test_validate_compose_option(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  php:\n    container: phq\n    exec: php\n')
    compose = tmp_path / "other.yaml"
    compose.write_text("services:\n  php:\n    image: php\n")
    result = runner.invoke(app, ["validate", "--compose", str(compose), str(config)])
    assert result.exit_code == 1
    assert f"{config}:4:16: error: container 'phq' is not in containers or a service of " \
           "other.yaml, nor a container compose creates; did you mean 'php'? " \
           "[unknown-container]" in result.output
    result = runner.invoke(app, ["validate", "--compose", str(tmp_path / "x.yaml"), str(config)])
    assert result.exit_code == 2


def test_no_color_is_honoured(tmp_path: Path, sidecar_cli: list[str]) -> None:
    # A real process under a pty would colour; with NO_COLOR it must not, even forced to a tty.
    import pty

    bad = FIXTURES / "invalid" / "duplicates.yaml"

    def run(env: dict[str, str]) -> bytes:
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(sidecar_cli[0], [*sidecar_cli, "validate", str(bad)], env)
        chunks = []
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.waitpid(pid, 0)
        return b"".join(chunks)

    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert b"\x1b[31m" in run(base)
    assert b"\x1b[" not in run({**base, "NO_COLOR": "1"})


def test_garbage_never_tracebacks(tmp_path: Path, sidecar_cli: list[str]) -> None:
    samples = [b"\x00\xff" * 100, b"version: [\n", b"a: *nope\n", b"{{{{", b"- - - -\n",
               b"version: !!binary AAAA\n", b"\xef\xbb\xbfversion: '1'\n"]
    for index, raw in enumerate(samples):
        path = tmp_path / f"f{index}.yaml"
        path.write_bytes(raw)
        result = subprocess.run([*sidecar_cli, "validate", str(path)], capture_output=True,
                                text=True)
        assert result.returncode in (1, 2), raw
        assert "Traceback" not in result.stderr + result.stdout


def test_init_reports_and_refuses_overwrite(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    image: php:8.3\n")
    result = runner.invoke(app, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    bridge = tmp_path / ".sidecar" / "bridge.yaml"
    bridge.write_text(bridge.read_text() + "# my edit\n")
    result = runner.invoke(app, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "skipped (exists, use --force)" in result.output
    assert bridge.read_text().endswith("# my edit\n")
    result = runner.invoke(app, ["init", "--dir", str(tmp_path), "--force"])
    assert "changed" in result.output
    assert not bridge.read_text().endswith("# my edit\n")
    result = runner.invoke(app, ["init", "--dir", str(tmp_path / "missing")])
    assert result.exit_code == 2
