"""Generated files, Ansible-style: plan each one (created/changed/ok/skipped), then apply.

A generated file ends with a checksum line over everything before it, so a file the user edited
by hand is recognised and kept unless they pass --force.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sidecar_gen.errors import ExitCode, InputError, SidecarError
from sidecar_gen.fsutil import open_regular, read_text_file, write_atomic
from sidecar_gen.runtime import atomic
from sidecar_gen.runtime.escape import escape

CHECKSUM_PREFIX = "# sidecar-checksum: sha256:"


class FileStatus(StrEnum):
    """What happens (or would happen) to one target."""

    CREATED = "created"
    CHANGED = "changed"
    OK = "ok"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Change:
    """The plan for one file: its status, the old and new text, and why it is skipped."""

    path: Path
    status: FileStatus
    old: str | None
    new: str
    reason: str = ""

    @property
    def writes(self) -> bool:
        """True when applying this change writes the file."""
        return self.status in (FileStatus.CREATED, FileStatus.CHANGED)

    def diff(self, label: str | None = None) -> str:
        """Unified diff from the current file to the new text (empty when nothing changes),
        each line escaped for the terminal (the file on disk may hold anything)."""
        if not self.writes:
            return ""
        name = label or str(self.path)
        lines = difflib.unified_diff(
            (self.old or "").removesuffix("\n").split("\n") if self.old else [],
            self.new.removesuffix("\n").split("\n"),
            fromfile=f"a/{name}" if self.old is not None else "/dev/null",
            tofile=f"b/{name}", lineterm="")
        return "".join(escape(line) + "\n" for line in lines)


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
    """The file's text, None when it does not exist; undecodable text, or anything that is
    not a regular file (a FIFO the agent planted must not hang `render` or `up`), counts as
    edited."""
    try:
        return read_text_file(path)
    except InputError as exc:
        return None if exc.reason == "no such file" else "\x00unreadable"


def plan_generated(path: Path, new: str, *, force: bool) -> Change:
    """Plan a fully generated file (`new` already carries its checksum)."""
    old = read_current(path)
    if old is None:
        return Change(path, FileStatus.CREATED, None, new)
    if old == new:
        return Change(path, FileStatus.OK, old, new)
    if edited_by_hand(old) and not force:
        return Change(path, FileStatus.SKIPPED, old, new, "edited by hand, use --force")
    return Change(path, FileStatus.CHANGED, old, new)


def plan_user_file(path: Path, new: str, *, force: bool) -> Change:
    """Plan a file the user owns once it exists (never overwritten without `force`)."""
    old = read_current(path)
    if old is None:
        return Change(path, FileStatus.CREATED, None, new)
    if old == new:
        return Change(path, FileStatus.OK, old, new)
    if not force:
        return Change(path, FileStatus.SKIPPED, old, new, "exists, use --force")
    return Change(path, FileStatus.CHANGED, old, new)


def plan_edit(path: Path, old: str | None, new: str) -> Change:
    """Plan an edit the tool computed itself from the current text (e.g. one added line)."""
    if old == new:
        return Change(path, FileStatus.OK, old, new)
    return Change(path, FileStatus.CREATED if old is None else FileStatus.CHANGED, old, new)


class WriteError(SidecarError):
    """A planned file cannot be written; nothing was changed (exit 2)."""

    def __init__(self, path: Path, reason: str, *, restored: bool = False) -> None:
        tail = ("; the files written before it were restored" if restored
                else "; nothing was changed")
        super().__init__(f"cannot write {path}: {reason}{tail}", exit_code=ExitCode.USAGE)


def _first_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _blocker(path: Path) -> str | None:
    """Why `path` cannot be written atomically (a temporary file in its folder, then a rename);
    None when nothing says it cannot (the write itself may still fail: see `apply`)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return "it is not a regular file"
    folder = _first_existing(path.parent)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"permission denied (folder {folder} is not writable)"
    return None


@dataclass
class _FileUndo:
    """How to put one target back: its old bytes and mode (None: it did not exist), and the
    folders the write created."""

    path: Path
    old: bytes | None = None
    mode: int | None = None
    made_dirs: tuple[Path, ...] = ()

    @classmethod
    def before(cls, path: Path) -> _FileUndo:
        missing = []
        folder = path.parent
        while not folder.exists() and folder.parent != folder:
            missing.append(folder)
            folder = folder.parent
        try:
            fd = open_regular(path)  # never blocks on a FIFO planted where we write
        except InputError:
            return cls(path, made_dirs=tuple(missing))
        with os.fdopen(fd, "rb") as handle:
            return cls(path, handle.read(), os.fstat(handle.fileno()).st_mode & 0o7777)

    def restore(self, *, content: bool = True) -> None:
        if content and self.old is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        elif content and self.old is not None:
            atomic.write_atomic(str(self.path), self.old, self.mode)
        for folder in self.made_dirs:  # deepest first; only while still empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def apply(changes: list[Change]) -> None:
    """Write every change that writes, all or nothing.

    Every target is checked before the first write; if a write still fails, the files already
    written are put back as they were (created ones removed). Raises WriteError (exit 2).
    """
    writes = [c for c in changes if c.writes]
    for change in writes:
        reason = _blocker(change.path)
        if reason:
            raise WriteError(change.path, reason)
    done: list[_FileUndo] = []
    for change in writes:
        undo = _FileUndo(change.path)
        try:
            undo = _FileUndo.before(change.path)
            write_atomic(change.path, change.new)
        except OSError as exc:
            undo.restore(content=False)
            for earlier in reversed(done):
                with contextlib.suppress(OSError):
                    earlier.restore()
            raise WriteError(change.path, exc.strerror or str(exc),
                             restored=bool(done)) from None
        done.append(undo)
