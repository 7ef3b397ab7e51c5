"""The image's rendered files and the entrypoint's wrapper step, without an engine."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar_gen.imagefiles import (
    ImageLayout,
    install_image_files,
    render_claude_wrapper,
    render_entrypoint,
)
from sidecar_gen.wrappers import boot_wrappers, salvage_command_names


def test_entrypoint_carries_the_build_arguments() -> None:
    text = render_entrypoint(ImageLayout(uid=1234, gid=2345))
    assert text.startswith("#!/bin/bash\n")
    assert "want_uid=${PUID:-1234}" in text
    assert "want_gid=${PGID:-2345}" in text
    assert "export PATH=/opt/sidecar/wrappers:/usr/local/sidecar/bin:" in text
    assert "boot-wrappers --dir /opt/sidecar/wrappers" in text
    # Order of the steps the image contract fixes.
    steps = ["firewall up", "usermod", "credentials.json", "boot-wrappers", "exec runuser"]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)


def test_claude_wrapper() -> None:
    text = render_claude_wrapper()
    assert "real=/usr/local/bin/claude" in text
    assert "exec runuser -u claude --" in text
    assert "--dangerously-skip-permissions" in text


def test_install_image_files(tmp_path: Path) -> None:
    written = install_image_files(uid=1500, gid=1600, root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "usr/local/sbin/sidecar-entrypoint", "usr/local/sidecar/bin/claude"]
    for path in written:
        assert os.access(path, os.X_OK)
    assert "${PUID:-1500}" in written[0].read_text()


def test_salvage_command_names(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  php: {exec: 5}\n  ../x: {}\n  .hidden: {}\n'
                      "  composer: nonsense\n")
    assert salvage_command_names(config) == ["composer", "php"]
    config.write_text("commands: [unclosed\n")
    assert salvage_command_names(config) == []
    assert salvage_command_names(tmp_path / "missing.yaml") == []


def test_boot_wrappers_with_a_broken_file(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  php:\n    container: app\n    exec: 5\n')
    wrappers = tmp_path / "wrappers"
    result = boot_wrappers(wrappers, config)
    assert not result.ok
    assert "exec" in result.message
    assert result.commands == ["php"]
    assert os.readlink(wrappers / "php") == ".sidecar-dispatch"
    assert os.access(wrappers / ".sidecar-dispatch", os.X_OK)


def test_boot_wrappers_with_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text('version: "1"\ncommands:\n  php:\n    container: app\n    exec: php\n')
    result = boot_wrappers(tmp_path / "wrappers", config)
    assert result.ok, result.message
    assert result.commands == ["php"]
