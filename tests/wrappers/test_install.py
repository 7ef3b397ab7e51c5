"""install-wrappers: report, idempotency, removal, and never touching foreign files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar_gen.errors import ConfigError, InputError
from sidecar_gen.runtime import cache
from sidecar_gen.wrappers.install import install_wrappers

LAUNCHER = ".sidecar-dispatch"


def write_bridge(path: Path, *names: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": "1", "commands": {n: {"container": "app", "exec": n} for n in names}}
    path.write_text(json.dumps(doc), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    return path


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_install_report_idempotency_and_removal(tmp_path: Path) -> None:
    config = write_bridge(tmp_path / "bridge.yaml", "php", "composer", "npm")
    bin_dir = tmp_path / "bin"
    first = install_wrappers(bin_dir, config)
    assert first.created == ["composer", "npm", "php"]
    assert (first.removed, first.ok, first.skipped) == ([], [], [])
    assert first.launcher_status == "created"
    for name in first.created:
        assert os.readlink(bin_dir / name) == LAUNCHER
    launcher = (bin_dir / LAUNCHER).read_text()
    assert launcher.startswith(f"#!{sys.executable} -IS\n")
    assert os.access(bin_dir / LAUNCHER, os.X_OK)

    again = install_wrappers(bin_dir, config)
    assert (again.created, again.removed, again.launcher_status) == ([], [], "ok")
    assert again.ok == ["composer", "npm", "php"]

    write_bridge(config, "php", "artisan")
    changed = install_wrappers(bin_dir, config)
    assert changed.created == ["artisan"]
    assert changed.removed == ["composer", "npm"]
    assert changed.ok == ["php"]
    assert sorted(os.listdir(bin_dir)) == [LAUNCHER, "artisan", "php"]


def test_never_touches_foreign_files(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "php").write_text("#!/bin/sh\necho mine\n")  # a file of a routed name
    (bin_dir / "notes.txt").write_text("keep")
    (bin_dir / "elsewhere").symlink_to("/usr/bin/env")
    other = tmp_path / "other"
    other.mkdir()
    (other / LAUNCHER).write_text("another installation")
    (bin_dir / "theirs").symlink_to(other / LAUNCHER)  # points to a launcher, not ours
    config = write_bridge(tmp_path / "bridge.yaml", "php", "node")
    report = install_wrappers(bin_dir, config)
    assert report.created == ["node"]
    assert report.skipped == [("php", "a file of that name exists and is not ours")]
    assert report.removed == []
    assert (bin_dir / "php").read_text() == "#!/bin/sh\necho mine\n"
    assert (bin_dir / "notes.txt").read_text() == "keep"
    assert os.readlink(bin_dir / "elsewhere") == "/usr/bin/env"
    assert os.readlink(bin_dir / "theirs") == str(other / LAUNCHER)


def test_refuses_invalid_or_missing_config(tmp_path: Path) -> None:
    bad = tmp_path / "bridge.yaml"
    bad.write_text('version: "1"\ncommands:\n  php: {bogus: 1}\n')
    with pytest.raises(ConfigError) as info:
        install_wrappers(tmp_path / "bin", bad)
    assert info.value.exit_code == 1
    assert info.value.findings
    assert not (tmp_path / "bin").exists()
    with pytest.raises(InputError) as missing:
        install_wrappers(tmp_path / "bin", tmp_path / "none.yaml")
    assert missing.value.exit_code == 2


def test_writes_a_fresh_route_cache(tmp_path: Path) -> None:
    config = write_bridge(tmp_path / "bridge.yaml", "php")
    report = install_wrappers(tmp_path / "bin", config)
    assert report.cache is not None and Path(report.cache).is_file()
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    routes = cache.load(str(config), cache.stamp_of(config.stat()), env)
    assert routes is not None
    assert routes.commands["php"].argv == ("php",)


def test_works_without_a_writable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    config = write_bridge(tmp_path / "bridge.yaml", "php")
    report = install_wrappers(tmp_path / "bin", config)
    assert report.cache is None
    # The dispatcher validates bridge.yaml in memory on every command and goes on routing.
    result = subprocess.run([str(tmp_path / "bin" / "php")], capture_output=True,
                            env={"BRIDGE_CONFIG": str(config), "XDG_CACHE_HOME": str(blocker),
                                 "PATH": "/usr/bin:/bin", "DOCKER_HOST": "ssh://nowhere"})
    assert result.returncode == 125
    assert b"DOCKER_HOST=ssh://nowhere: unsupported scheme" in result.stderr


def test_cli_install_wrappers_prints_the_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sidecar_gen.cli import app

    config = write_bridge(tmp_path / "bridge.yaml", "php", "node")
    runner = CliRunner()
    result = runner.invoke(app, ["install-wrappers", "--dir", str(tmp_path / "bin"),
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["created  node", "created  php"]
    again = runner.invoke(app, ["install-wrappers", "--dir", str(tmp_path / "bin"),
                                "--config", str(config)])
    assert again.stdout.splitlines()[1:] == ["ok       node", "ok       php"]

    bad = tmp_path / "bad.yaml"
    bad.write_text('version: "1"\ncommands:\n  php: {container: app}\n')
    refused = runner.invoke(app, ["install-wrappers", "--dir", str(tmp_path / "bin"),
                                  "--config", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}:3:" in refused.stderr
    assert "Traceback" not in refused.output


def test_launcher_works_from_an_interpreter_path_with_spaces(tmp_path: Path) -> None:
    from sidecar_gen.wrappers.install import launcher_text

    spaced = tmp_path / "my python" / "python"
    spaced.parent.mkdir()
    spaced.symlink_to(sys.executable)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / LAUNCHER
    launcher.write_text(launcher_text(str(spaced)))
    launcher.chmod(0o755)
    (bin_dir / "php").symlink_to(LAUNCHER)
    config = write_bridge(tmp_path / "bridge.yaml", "php")
    result = subprocess.run([str(bin_dir / "php")], capture_output=True,
                            env={"BRIDGE_CONFIG": str(config), "PATH": "/usr/bin:/bin",
                                 "XDG_CACHE_HOME": str(tmp_path / "cache"),
                                 "DOCKER_HOST": "ssh://nowhere"})
    assert launcher.read_text().startswith("#!/bin/sh\n")
    assert result.returncode == 125
    assert result.stderr == (b"sidecar: php: DOCKER_HOST=ssh://nowhere: unsupported scheme; "
                             b"use unix:///path/docker.sock or tcp://host:port\n")
