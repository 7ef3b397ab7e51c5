"""The uids and gids the image uses for something else: PUID/PGID may not take them.

Derived from the image itself at build time (not a hand list), so a package that adds an
account or a group-owned file is covered without anyone remembering to: a uid is reserved when
an account has it (`sidecar-dns`, whose uid the firewall trusts with DNS; `_apt`, `nobody`...)
or when it owns a file; a gid when it owns a file (`shadow`, `utmp`, `mail`...), is an
account's primary group (`nogroup` is the forwarder's), has members, or is a mount's `gid=`
option (the terminals' `tty`). The agent's own ids are never reserved. A group that owns nothing
and gives nothing (`users`, `dialout`, which is macOS's gid 20 `staff`) stays usable.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# Kernel and runtime file systems: what they hold is not the image's.
_SKIP = ("proc", "sys", "dev")


@dataclass(frozen=True)
class ReservedIds:
    """uid/gid -> a name saying what uses it (an account or group name, or `files`)."""

    uids: dict[int, str] = field(default_factory=dict)
    gids: dict[int, str] = field(default_factory=dict)


def _table(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 3]


def _owners(root: Path) -> tuple[set[int], set[int]]:
    uids: set[int] = set()
    gids: set[int] = set()
    skip = {str(root / rel) for rel in _SKIP}
    try:
        device = root.lstat().st_dev
    except OSError:
        return uids, gids
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            uids.add(info.st_uid)
            gids.add(info.st_gid)
            if (stat.S_ISDIR(info.st_mode) and info.st_dev == device
                    and entry.path not in skip):
                stack.append(entry.path)
    return uids, gids


def _mount_gids(mountinfo: str) -> set[int]:
    gids: set[int] = set()
    for line in mountinfo.splitlines():
        for option in line.replace(" ", ",").split(","):
            if option.startswith("gid=") and option[4:].isdigit():
                gids.add(int(option[4:]))
    return gids


def reserved_ids(root: Path, agent_uid: int, agent_gid: int, agent: str = "claude",
                 mountinfo: str = "") -> ReservedIds:
    """What the image at `root` uses, minus the agent's own account, group and files."""
    uids: dict[int, str] = {0: "root"}
    gids: dict[int, str] = {0: "root"}
    group_names: dict[int, str] = {}
    for fields in _table(root / "etc" / "group"):
        if fields[2].isdigit():
            gid = int(fields[2])
            group_names.setdefault(gid, fields[0])
            if [m for m in fields[3].split(",") if m and m != agent]:
                gids.setdefault(gid, fields[0])
    for fields in _table(root / "etc" / "passwd"):
        if fields[0] == agent or not (fields[2].isdigit() and fields[3].isdigit()):
            continue
        uids.setdefault(int(fields[2]), fields[0])
        gid = int(fields[3])
        gids.setdefault(gid, group_names.get(gid, f"the group of {fields[0]}"))
    file_uids, file_gids = _owners(root)
    for uid in file_uids:
        uids.setdefault(uid, "files")
    for gid in file_gids | _mount_gids(mountinfo):
        gids.setdefault(gid, group_names.get(gid, "files"))
    uids.pop(agent_uid, None)
    gids.pop(agent_gid, None)
    return ReservedIds(dict(sorted(uids.items())), dict(sorted(gids.items())))


def this_system(agent_uid: int, agent_gid: int) -> ReservedIds:
    """`reserved_ids` of the running system (the image, during its build)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        mountinfo = ""
    return reserved_ids(Path("/"), agent_uid, agent_gid, mountinfo=mountinfo)
