"""The image's rendered files and the entrypoint's wrapper step, without an engine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sidecar_gen.image.files import (
    ImageLayout,
    install_image_files,
    render_claude_wrapper,
    render_entrypoint,
    render_health,
)
from sidecar_gen.image.ids import ReservedIds, reserved_ids
from sidecar_gen.wrappers.install import boot_wrappers, salvage_command_names


def test_the_build_ids_reach_the_entrypoint_and_change_nothing_else() -> None:
    one, two = (render_entrypoint(ImageLayout(uid=uid, gid=gid)).splitlines()
                for uid, gid in ((1234, 2345), (4321, 5432)))
    assert len(one) == len(two)
    changed = [(a, b) for a, b in zip(one, two, strict=True) if a != b]
    for a, b in changed:  # the same line but for the ids
        assert a.replace("1234", "U").replace("2345", "G") == \
            b.replace("4321", "U").replace("5432", "G"), (a, b)
    # PUID/PGID fall back to them (and an invalid or reserved one back to them too).
    assert sum("${PUID:-" in a for a, _ in changed) == 1
    assert sum("${PGID:-" in a for a, _ in changed) == 1
    checked = subprocess.run(["bash", "-n"], input="\n".join(one), text=True,
                             capture_output=True)
    assert checked.returncode == 0, checked.stderr


def test_entrypoint_steps_come_in_the_order_the_image_contract_fixes() -> None:
    text = render_entrypoint(ImageLayout(uid=1234, gid=2345))
    assert text.startswith("#!/bin/bash\n")
    # Nothing is ready before the last mark, and Claude starts only after it.
    steps = ['"$health" --mark starting', "firewall up", "usermod", "credentials.json",
             "boot-wrappers", '"$health" --mark "$ready"', "exec setpriv --reuid=claude"]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)


def test_claude_wrapper_waits_for_readiness_before_anything() -> None:
    text = render_claude_wrapper()
    assert "real=/usr/local/bin/claude" in text
    steps = ["/usr/local/sbin/sidecar-health --wait", "exec setpriv --reuid=claude"]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "--dangerously-skip-permissions" in text


def test_health_reads_the_marker_of_this_start() -> None:
    text = render_health()
    assert "marker=/run/sidecar/ready" in text
    assert "forwarder_pid=/run/sidecar/firewall/dnsmasq.pid" in text
    assert "dns_user=sidecar-dns" in text
    assert "/proc/1/stat" in text


def test_install_image_files(tmp_path: Path) -> None:
    written = install_image_files(uid=1500, gid=1600, root=tmp_path,
                                  reserved=ReservedIds({998: "sidecar-dns"}, {42: "shadow"}))
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "usr/local/sbin/sidecar-entrypoint", "usr/local/sidecar/bin/claude",
        "usr/local/sbin/sidecar-health"]
    for path in written:
        assert os.access(path, os.X_OK)
    entrypoint = written[0].read_text()
    assert "${PUID:-1500}" in entrypoint
    assert 'reserved_uids=" 998 "' in entrypoint
    assert 'reserved_gids=" 42 "' in entrypoint


def test_reserved_ids_come_from_the_image(tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/bin/false\n"
        "sidecar-dns:x:998:65534::/nonexistent:/bin/false\n"
        "claude:x:1000:1000::/home/claude:/bin/bash\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\ndialout:x:20:\nsudo:x:27:someone\nshadow:x:42:\nusers:x:100:\n"
        "nogroup:x:65534:\nclaude:x:1000:claude\n")
    secret = root / "etc" / "shadow"
    secret.write_text("")
    home = root / "home" / "claude"
    home.mkdir(parents=True)
    own_uid, own_gid = os.getuid(), os.getgid()
    if own_uid == 0:  # a file owned by a uid without an account, and one of the shadow group
        os.chown(secret, 0, 42)
        (root / "orphan").write_text("")
        os.chown(root / "orphan", 4242, 4343)
        os.chown(home, 1000, 1000)
    ids = reserved_ids(root, 1000, 1000, mountinfo="1 2 0:5 / /dev/pts rw - devpts devpts "
                                                   "rw,gid=5,mode=620\n")
    assert ids.uids[998] == "sidecar-dns"
    assert ids.uids[42] == "_apt"
    assert 1000 not in ids.uids and 1000 not in ids.gids  # the agent's own
    assert ids.gids[65534] == "nogroup"  # the forwarder's primary group
    assert ids.gids[27] == "sudo"  # has members
    assert ids.gids[5] == "files"  # the terminals' group, from the mount options
    assert 20 not in ids.gids and 100 not in ids.gids  # own nothing, give nothing
    assert own_uid in ids.uids and own_gid in ids.gids  # whoever owns the files
    if own_uid == 0:
        assert ids.gids[42] == "shadow"
        assert ids.uids[4242] == "files" and ids.gids[4343] == "files"


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
