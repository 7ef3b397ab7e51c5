"""Generated files, Ansible-style: plan each one (created/changed/ok/skipped), then apply.

A generated file ends with a checksum line over everything before it, so a file the user edited
by hand is recognised and kept unless they pass --force.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sidecar_gen.fsutil import write_atomic

CHECKSUM_PREFIX = "# sidecar-checksum: sha256:"


class Status(StrEnum):
    """What happens (or would happen) to one target."""

    CREATED = "created"
    CHANGED = "changed"
    OK = "ok"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Change:
    """The plan for one file: its status, the old and new text, and why it is skipped."""

    path: Path
    status: Status
    old: str | None
    new: str
    reason: str = ""

    @property
    def writes(self) -> bool:
        """True when applying this change writes the file."""
        return self.status in (Status.CREATED, Status.CHANGED)

    def diff(self, label: str | None = None) -> str:
        """Unified diff from the current file to the new text (empty when nothing changes)."""
        if not self.writes:
            return ""
        name = label or str(self.path)
        return "".join(difflib.unified_diff(
            (self.old or "").splitlines(keepends=True), self.new.splitlines(keepends=True),
            fromfile=f"a/{name}" if self.old is not None else "/dev/null",
            tofile=f"b/{name}"))


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def with_checksum(text: str) -> str:
    """Append the checksum line that marks `text` as generated and unedited."""
    body = text if text.endswith("\n") else text + "\n"
    return f"{body}{CHECKSUM_PREFIX}{_digest(body)}\n"


def edited_by_hand(text: str) -> bool:
    """True when a generated file no longer matches its own checksum (or lost it)."""
    body, _, last = text.rstrip("\n").rpartition("\n")
    if not last.startswith(CHECKSUM_PREFIX):
        return True
    return last.removeprefix(CHECKSUM_PREFIX).strip() != _digest(body + "\n")


def read_current(path: Path) -> str | None:
    """The file's text, None when it does not exist; undecodable text counts as edited."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return "\x00unreadable"


def plan_generated(path: Path, new: str, *, force: bool) -> Change:
    """Plan a fully generated file (`new` already carries its checksum)."""
    old = read_current(path)
    if old is None:
        return Change(path, Status.CREATED, None, new)
    if old == new:
        return Change(path, Status.OK, old, new)
    if edited_by_hand(old) and not force:
        return Change(path, Status.SKIPPED, old, new, "edited by hand, use --force")
    return Change(path, Status.CHANGED, old, new)


def plan_user_file(path: Path, new: str, *, force: bool) -> Change:
    """Plan a file the user owns once it exists (never overwritten without `force`)."""
    old = read_current(path)
    if old is None:
        return Change(path, Status.CREATED, None, new)
    if old == new:
        return Change(path, Status.OK, old, new)
    if not force:
        return Change(path, Status.SKIPPED, old, new, "exists, use --force")
    return Change(path, Status.CHANGED, old, new)


def plan_edit(path: Path, old: str | None, new: str) -> Change:
    """Plan an edit the tool computed itself from the current text (e.g. one added line)."""
    if old == new:
        return Change(path, Status.OK, old, new)
    return Change(path, Status.CREATED if old is None else Status.CHANGED, old, new)


def apply(changes: list[Change]) -> None:
    """Write every change that writes, atomically, one file at a time."""
    for change in changes:
        if change.writes:
            write_atomic(change.path, change.new)
