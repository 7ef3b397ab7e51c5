"""Approved vs now: what changed, as data, and as diffs that name each file.

What decides: the effective compose model (compose's resolution, so a comment or a reordered
key is no change, and a new override file, `COMPOSE_FILE` in `.env` or a changed variable is),
the policy (`bridge.yaml`, `allowed-domains.txt`, byte for byte) and the git files that decide
what git runs on the host (`gitfiles`: a configuration by its entries, hooks by their bytes).
Compose's input files are compared too, to say where a change comes from; a change of them
that leaves the model alone decides nothing.

Everything is compared raw; what is shown is escaped line by line (`runtime.escape`): the
agent writes these files, and a key holding a clear-screen must not repaint the diff the user
approves. Values that are not secrets are compared and shown in clear (`secrets`); a record
made before that rule holds their digests, which are read back as the values they stand for
when those are the same now, so an upgrade alone shows no difference.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sidecar_gen.runtime.escape import escape, quote
from sidecar_gen.trust.record import Approval, FileState
from sidecar_gen.trust.secrets import upgrade_text, upgrade_values
from sidecar_gen.trust.snapshot import Snapshot

Reveal = Mapping[str, str]  # digest -> the secret it stands for (`sidecar trust --show-values`)

MODEL_LABEL = "effective compose model (docker compose config)"


@dataclass(frozen=True)
class FileChange:
    """One input file that differs: `kind` is new, removed or changed."""

    name: str
    kind: str
    old: FileState
    new: FileState

    def diff(self, reveal: Reveal | None = None) -> str:
        """A unified diff of the file's copies (secrets masked in env files; `reveal` adds the
        current value of each), each line escaped."""
        hidden = [state for state in (self.old, self.new) if state.exists and state.text is None]
        if hidden:
            return _shown([f"--- a/{self.name}", f"+++ b/{self.name}",
                           "(binary, unreadable or over 1 MiB: contents not shown)"])
        return _shown(difflib.unified_diff(
            _lines(self.old.text), _lines(self.new.text),
            fromfile=f"a/{self.name}" if self.old.exists else "/dev/null",
            tofile=f"b/{self.name}" if self.new.exists else "/dev/null", lineterm=""), reveal)


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a snapshot with the approval (None: nothing approved yet)."""

    approval: Approval | None
    files: list[FileChange] = field(default_factory=list)
    model_lines: tuple[list[str], list[str]] = ([], [])
    policy: list[str] = field(default_factory=list)  # names of policy files that differ
    compose_versions: tuple[str | None, str | None] = (None, None)
    hidden: Reveal = field(default_factory=dict, repr=False)  # the secrets now, by digest
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

    def model_diff(self, reveal: Reveal | None = None) -> str:
        """The model's difference as `path: value` lines (removed `-`, added `+`)."""
        old, new = self.model_lines
        return _shown(difflib.unified_diff(old, new, fromfile=f"a/{MODEL_LABEL} (approved)",
                                           tofile=f"b/{MODEL_LABEL} (now)", n=0, lineterm=""),
                      reveal)

    def summary(self) -> list[str]:
        """One line per changed file (and the model), for the terminal (escaped)."""
        lines = [f"{change.kind:<8} {change.name}" for change in [*self.files, *self.git]]
        if self.model_changed:
            lines.append(f"{'changed':<8} {MODEL_LABEL}")
        old, new = self.compose_versions
        if self.model_changed and old and new and old != new:
            lines.append(f"note: Docker Compose was {old} at approval and is {new} now; part of "
                         "the model's difference may come from the upgrade")
        return [escape(line) for line in lines]

    def text(self, show_values: bool = False) -> str:
        """Every diff: each changed file, then the model. `show_values`: each line that holds
        a secret's digest also says its current value (the user asked for it)."""
        reveal = self.hidden if show_values else None
        return "".join(change.diff(reveal) for change in [*self.files, *self.git]) + \
            self.model_diff(reveal)


def _lines(text: str | None) -> list[str]:
    """A file's lines, split at `\n` only (a `\r` or a line separator stays in its line and
    is shown escaped there, never obeyed)."""
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def _shown(lines: Iterable[str], reveal: Reveal | None = None) -> str:
    """Diff lines as the terminal gets them: each one escaped and cut, one per line; with
    `reveal`, a line holding a secret's digest also says what the secret is now."""
    out = []
    for line in lines:
        shown = escape(line)
        if reveal and "hmac-sha256:" in line and not line.startswith(("---", "+++")):
            values = [quote(value, 200) for token, value in reveal.items() if token in line]
            if values:
                shown += f"   (now: {', '.join(values)})"
        out.append(shown + "\n")
    return "".join(out)


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


def _upgraded(approval: Approval, known: Mapping[str, str]) -> Approval:
    """`approval` with the digests an older version stored for values that are not secrets
    read back as those values, where they are the same now (`secrets.upgrade_*`)."""
    if not known:
        return approval
    model = dict(approval.model)
    services = model.get("services")
    if isinstance(services, dict):
        model["services"] = {name: _upgraded_service(spec, known)
                             for name, spec in services.items()}
    files = {name: state if state.text is None else
             FileState(state.digest, upgrade_text(state.text, dict(known)))
             for name, state in approval.files.items()}
    return replace(approval, model=model, files=files)


def _upgraded_service(spec: Any, known: Mapping[str, str]) -> Any:
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    if "environment" in out:
        out["environment"] = upgrade_values(out["environment"], dict(known))
    build = out.get("build")
    if isinstance(build, dict) and "args" in build:
        out["build"] = {**build, "args": upgrade_values(build["args"], dict(known))}
    return out


def compare(approval: Approval | None, snapshot: Snapshot) -> Comparison:
    """Compare what is on disk and what compose resolves now with what was approved."""
    masks = snapshot.masks
    hidden = dict(masks.hidden) if masks else {}
    if approval is None:
        files = file_changes({}, snapshot.files)
        return Comparison(None, files, ([], flatten(snapshot.model)),
                          sorted(snapshot.policy), (None, snapshot.compose_version), hidden,
                          file_changes({}, snapshot.git.states))
    approval = _upgraded(approval, masks.known if masks else {})
    policy = sorted(name for name in set(approval.policy) | set(snapshot.policy)
                    if approval.policy.get(name) != snapshot.policy.get(name))
    return Comparison(
        approval=approval,
        files=file_changes(approval.files, snapshot.files),
        model_lines=(flatten(approval.model), flatten(snapshot.model)),
        policy=policy,
        compose_versions=(approval.compose_version, snapshot.compose_version),
        hidden=hidden,
        # A record from before git files were approved: every one of them is new, once.
        git=file_changes(approval.git or {}, snapshot.git.states),
    )
