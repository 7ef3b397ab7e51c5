"""Approved vs now: what changed, as data, and as diffs that name each file.

What decides: the effective compose model (compose's resolution, so a comment or a reordered
key is no change, and a new override file, `COMPOSE_FILE` in `.env` or a changed variable is),
the policy (`bridge.yaml`, `allowed-domains.txt`, byte for byte) and the git files that decide
what git runs on the host (`gitfiles`: a configuration by its entries, hooks by their bytes).
Compose's input files are compared too, to say where a change comes from; a change of them
that leaves the model alone decides nothing.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from sidecar_gen.trust.record import Approval, FileState
from sidecar_gen.trust.snapshot import Snapshot

MODEL_LABEL = "effective compose model (docker compose config)"


@dataclass(frozen=True)
class FileChange:
    """One input file that differs: `kind` is new, removed or changed."""

    name: str
    kind: str
    old: FileState
    new: FileState

    def diff(self) -> str:
        """A unified diff of the file's copies (masked values for env files)."""
        hidden = [state for state in (self.old, self.new) if state.exists and state.text is None]
        if hidden:
            return (f"--- a/{self.name}\n+++ b/{self.name}\n"
                    "(binary, unreadable or over 1 MiB: contents not shown)\n")
        return "".join(difflib.unified_diff(
            (self.old.text or "").splitlines(keepends=True),
            (self.new.text or "").splitlines(keepends=True),
            fromfile=f"a/{self.name}" if self.old.exists else "/dev/null",
            tofile=f"b/{self.name}" if self.new.exists else "/dev/null"))


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a snapshot with the approval (None: nothing approved yet)."""

    approval: Approval | None
    files: list[FileChange] = field(default_factory=list)
    model_lines: tuple[list[str], list[str]] = ([], [])
    policy: list[str] = field(default_factory=list)  # names of policy files that differ
    compose_versions: tuple[str | None, str | None] = (None, None)
    git: list[FileChange] = field(default_factory=list)  # git files that decide what git runs

    @property
    def first_use(self) -> bool:
        """True when the project has no approval yet."""
        return self.approval is None

    @property
    def model_changed(self) -> bool:
        """True when compose resolves a different model than the approved one."""
        return self.model_lines[0] != self.model_lines[1]

    @property
    def changed(self) -> bool:
        """True when anything that decides how the stack starts differs from the approval."""
        return self.first_use or self.model_changed or bool(self.policy) or bool(self.git)

    def names(self) -> list[str]:
        """The changed files, each once, in display order (git files last)."""
        return [change.name for change in [*self.files, *self.git]]

    def model_diff(self) -> str:
        """The model's difference as `path: value` lines (removed `-`, added `+`)."""
        old, new = self.model_lines
        body = list(difflib.unified_diff(old, new, fromfile=f"a/{MODEL_LABEL} (approved)",
                                         tofile=f"b/{MODEL_LABEL} (now)", n=0, lineterm=""))
        return "".join(line + "\n" for line in body)

    def summary(self) -> list[str]:
        """One line per changed file (and the model), for the terminal."""
        lines = [f"{change.kind:<8} {change.name}" for change in [*self.files, *self.git]]
        if self.model_changed:
            lines.append(f"{'changed':<8} {MODEL_LABEL}")
        old, new = self.compose_versions
        if self.model_changed and old and new and old != new:
            lines.append(f"note: Docker Compose was {old} at approval and is {new} now; part of "
                         "the model's difference may come from the upgrade")
        return lines

    def text(self) -> str:
        """Every diff: each changed file, then the model."""
        return "".join(change.diff() for change in [*self.files, *self.git]) + \
            self.model_diff()


def flatten(value: Any, prefix: str = "") -> list[str]:
    """A JSON document as sorted `a.b[0].c: value` lines: a diff of them names each setting."""
    if isinstance(value, dict) and value:
        out: list[str] = []
        for key in sorted(value):
            out += flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and value:
        out = []
        for index, item in enumerate(value):
            out += flatten(item, f"{prefix}[{index}]")
        return out
    return [f"{prefix}: {json.dumps(value, ensure_ascii=False, sort_keys=True)}"]


def file_changes(old: dict[str, FileState], new: dict[str, FileState]) -> list[FileChange]:
    """The files that differ between two sets of file states (by name), in name order."""
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, FileState(None)), new.get(name, FileState(None))
        if before.digest == after.digest:
            continue
        kind = "new" if not before.exists else "removed" if not after.exists else "changed"
        changes.append(FileChange(name, kind, before, after))
    return changes


def compare(approval: Approval | None, snapshot: Snapshot) -> Comparison:
    """Compare what is on disk and what compose resolves now with what was approved."""
    if approval is None:
        files = file_changes({}, snapshot.files)
        return Comparison(None, files, ([], flatten(snapshot.model)),
                          sorted(snapshot.policy), (None, snapshot.compose_version),
                          file_changes({}, snapshot.git.states))
    policy = sorted(name for name in set(approval.policy) | set(snapshot.policy)
                    if approval.policy.get(name) != snapshot.policy.get(name))
    return Comparison(
        approval=approval,
        files=file_changes(approval.files, snapshot.files),
        model_lines=(flatten(approval.model), flatten(snapshot.model)),
        policy=policy,
        compose_versions=(approval.compose_version, snapshot.compose_version),
        # A record from before git files were approved: every one of them is new, once.
        git=file_changes(approval.git or {}, snapshot.git.states),
    )
