"""`sidecar auth`: the real credentials, kept on the host in the user's state folder.

Never in a project folder (the agent writes it), never on a command line (`ps` shows it),
never printed. Layout, beside the approval records (`trust.record`'s state folder rules):

    $XDG_STATE_HOME/claude-sidecar/credentials/      0700
        api-key | oauth-token                        0600, one line; at most one of the two
        github-token                                 0600

Where the broker's secret comes from, first found wins (`resolve`):

    Anthropic  1. ANTHROPIC_API_KEY in the environment (of `sidecar up`)
               2. CLAUDE_CODE_OAUTH_TOKEN in the environment
               3. the stored api-key or oauth-token
    GitHub     the stored github-token

The file names are the broker's own (`broker.credentials.KINDS`): what `sidecar up` hands the
broker is the same files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidecar_gen.broker.credentials import (
    ANTHROPIC_KINDS,
    API_KEY,
    DESCRIPTION,
    GITHUB_TOKEN,
    MAX_SECRET,
    OAUTH_TOKEN,
    clean_secret,
)
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.fsutil import open_regular
from sidecar_gen.runtime import atomic
from sidecar_gen.trust.record import private_folder, state_root

FOLDER = "credentials"
ENVIRONMENT = ((API_KEY, "ANTHROPIC_API_KEY"), (OAUTH_TOKEN, "CLAUDE_CODE_OAUTH_TOKEN"))


class CredentialError(SidecarError):
    """A credential cannot be stored or read safely (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=ExitCode.USAGE)


@dataclass(frozen=True)
class Source:
    """One credential and where it comes from (`value` is never shown: not in repr)."""

    kind: str
    origin: str  # "environment ANTHROPIC_API_KEY" or "stored <path>"
    value: str = field(repr=False)

    @property
    def description(self) -> str:
        """What it is, in words."""
        return DESCRIPTION[self.kind]


@dataclass(frozen=True)
class Resolved:
    """The credentials in force, and the stored ones the environment overrides."""

    anthropic: Source | None
    github: Source | None
    overridden: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Stored:
    """What `CredentialStore.put` did."""

    path: Path
    replaced: tuple[str, ...]  # kinds removed or overwritten


class CredentialStore:
    """The credentials folder in the state folder."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else state_root()
        self.folder = self.root / FOLDER

    def _ready(self) -> Path:
        private_folder(self.root)
        return private_folder(self.folder)

    def path(self, kind: str) -> Path:
        """Where a kind is stored."""
        return self.folder / kind

    def get(self, kind: str) -> str | None:
        """The stored value of `kind`, or None. Refuses a file another user could have written
        (a planted credential would send your requests under someone else's account)."""
        if not self.folder.exists():
            return None
        path = self._ready() / kind
        if not os.path.lexists(path):
            return None
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise CredentialError(f"{path}: a symbolic link: refusing to read it (remove it "
                                  "and store the credential again)")
        fd = open_regular(path)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o022:
                raise CredentialError(f"{path}: not a file of yours that only you can write: "
                                      "refusing to use it")
            if info.st_mode & 0o077:
                os.fchmod(handle.fileno(), 0o600)  # ours: tighten it
            raw = handle.read(MAX_SECRET + 2)
        return clean_secret(raw, str(path), kind)

    def put(self, kind: str, value: str, *, force: bool = False) -> Stored:
        """Store `value` as `kind` (0600, atomically). An existing credential of the same
        service is replaced only with `force` (one Anthropic credential at a time)."""
        folder = self._ready()
        same = ANTHROPIC_KINDS if kind in ANTHROPIC_KINDS else (kind,)
        present = [k for k in same if os.path.lexists(folder / k)]
        if present and not force:
            names = " and ".join(DESCRIPTION[k] for k in present)
            raise CredentialError(f"{folder} already holds the {names}: add --force to "
                                  "replace it")
        atomic.write_atomic(str(folder / kind), value.encode("ascii") + b"\n", 0o600)
        for other in present:
            if other != kind:
                (folder / other).unlink()
        return Stored(folder / kind, tuple(present))

    def remove(self, kind: str) -> bool:
        """Delete a stored kind; False when there was none."""
        path = self.path(kind)
        if not os.path.lexists(path):
            return False
        self._ready()
        path.unlink()
        return True


def resolve(store: CredentialStore, env: Mapping[str, str] | None = None) -> Resolved:
    """The credentials in force (see the module's precedence) and the ones overridden."""
    environ = os.environ if env is None else env
    candidates: list[Source] = []
    for kind, name in ENVIRONMENT:
        value = environ.get(name, "").strip()
        if value:
            origin = f"environment {name}"
            candidates.append(Source(kind, origin, clean_secret(value.encode(), name, kind)))
    for kind in ANTHROPIC_KINDS:
        stored = store.get(kind)
        if stored is not None:
            candidates.append(Source(kind, f"stored {store.path(kind)}", stored))
    github_value = store.get(GITHUB_TOKEN)
    github = (Source(GITHUB_TOKEN, f"stored {store.path(GITHUB_TOKEN)}", github_value)
              if github_value is not None else None)
    anthropic = candidates[0] if candidates else None
    return Resolved(anthropic, github, tuple(candidates[1:]))
