"""The approval record: what the user approved for one project folder, where no container can
write it.

Layout (directories 0700, files 0600, owned by the user):

    $XDG_STATE_HOME/claude-sidecar/          (default ~/.local/state/claude-sidecar/)
        key                                  32 random bytes: the HMAC key of every digest
        projects/<folder>-<hash>/            one per project folder (hash of its real path)
            approval.json                    the record (written atomically)
            resolved.json                    the last verified resolution (`trust.resolved`)
            lock                             serialises `sidecar up`/`trust` on the project

`approval.json` (format 1) holds the project folder, the compose project, when and with which
sidecar and compose versions it was approved, the effective compose model with the value of
every `environment:` entry and build argument that is a secret by its name (`secrets`)
replaced by a keyed digest (the others in clear), each input file's keyed digest and a copy for
diffs (`.env`-style files with the secrets' values masked), the exact approved
`bridge.yaml` and `allowed-domains.txt` (what `sidecar up` puts into the policy volume), and
the keyed digests and copies of the git files that decide what git runs on the host (`git`:
`trust.gitfiles`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.runtime import atomic

FORMAT = 1
RECORD_NAME = "approval.json"
KEY_NAME = "key"
APP_DIR = "claude-sidecar"


class RecordError(SidecarError):
    """The state folder or an approval record cannot be used safely."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class FileState:
    """One input file as approved (or as it is now): None digest means it did not exist.

    `text` is a copy for diffs (masked for env files), None when absent, binary or too large.
    """

    digest: str | None
    text: str | None = None

    @property
    def exists(self) -> bool:
        """True when the file existed."""
        return self.digest is not None

    def to_json(self) -> dict[str, Any] | None:
        """The record's form: null for a missing file."""
        return None if self.digest is None else {"digest": self.digest, "text": self.text}

    @classmethod
    def from_json(cls, value: Any) -> FileState:
        """The inverse of `to_json`."""
        if value is None:
            return cls(None)
        return cls(str(value["digest"]), value.get("text"))


@dataclass(frozen=True)
class Approval:
    """What the user approved (the content of approval.json)."""

    project_dir: str
    compose_project: str
    model: dict[str, Any]
    files: dict[str, FileState]
    policy: dict[str, str]
    approved_at: str = ""
    sidecar_version: str = ""
    compose_version: str | None = None
    # The project's execution-relevant git files (`trust.gitfiles`); None in a record made
    # before they were part of the approval.
    git: dict[str, FileState] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON document stored in approval.json."""
        return {
            "format": FORMAT,
            "project_dir": self.project_dir,
            "compose_project": self.compose_project,
            "approved_at": self.approved_at,
            "sidecar_version": self.sidecar_version,
            "compose_version": self.compose_version,
            "model": self.model,
            "files": {name: state.to_json() for name, state in sorted(self.files.items())},
            "policy": dict(sorted(self.policy.items())),
            "git": None if self.git is None else {
                name: state.to_json() for name, state in sorted(self.git.items())},
        }

    @classmethod
    def from_json(cls, doc: Any) -> Approval:
        """Parse approval.json; ValueError when it is not a record this version reads."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not an approval record of format 1")
        try:
            return cls(
                project_dir=str(doc["project_dir"]),
                compose_project=str(doc["compose_project"]),
                model=dict(doc["model"]),
                files={str(k): FileState.from_json(v) for k, v in doc["files"].items()},
                policy={str(k): str(v) for k, v in doc["policy"].items()},
                approved_at=str(doc.get("approved_at", "")),
                sidecar_version=str(doc.get("sidecar_version", "")),
                compose_version=doc.get("compose_version"),
                git=None if doc.get("git") is None else {
                    str(k): FileState.from_json(v) for k, v in doc["git"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed approval record ({exc})") from None


def state_root(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/claude-sidecar`, else `~/.local/state/claude-sidecar`."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_STATE_HOME", "")
    if not base.startswith("/"):  # the XDG spec: a relative value is invalid and ignored
        home = environ.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".local", "state")
    return Path(base) / APP_DIR


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return (slug or "project")[:40]


def record_dir(root: Path, project_dir: Path) -> Path:
    """The record folder of a project folder, keyed by its real path."""
    real = os.path.realpath(project_dir)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return root / "projects" / f"{_slug(os.path.basename(real))}-{digest}"


def _private_dir(path: Path) -> None:
    """Create `path` (and parents) 0700; refuse one that others could write or that is not ours.

    A folder another user can write would let them plant an approval: it is never used.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise RecordError(f"{path}: not a directory")
    if info.st_uid != os.getuid():
        raise RecordError(f"{path}: owned by uid {info.st_uid}, not by you: refusing to use it")
    if info.st_mode & 0o022:
        raise RecordError(f"{path}: writable by other users: check what is in it, then "
                          "chmod 700 it")
    if info.st_mode & 0o077:
        path.chmod(0o700)  # readable by others: ours, so tighten it (copies of project files)


class ApprovalStore:
    """The state folder: the HMAC key and one approval record per project folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._key: bytes | None = None

    def key(self) -> bytes:
        """The per-user HMAC key (created on first use)."""
        if self._key is None:
            _private_dir(self.root)
            path = self.root / KEY_NAME
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
            if len(data) < 32:
                data = os.urandom(32)
                atomic.write_atomic(str(path), data, 0o600)
            self._key = data
        return self._key

    def digest(self, data: bytes) -> str:
        """A keyed digest: equal content gives equal digests, yet a guessable secret (a short
        password in `.env`) cannot be confirmed from the record without the key."""
        return self.digest_chunks([data])

    def digest_chunks(self, chunks: Iterable[bytes]) -> str:
        """`digest` of the concatenated chunks (a large file without holding it whole)."""
        mac = hmac.new(self.key(), digestmod=hashlib.sha256)
        for chunk in chunks:
            mac.update(chunk)
        return "hmac-sha256:" + mac.hexdigest()

    def directory(self, project_dir: Path) -> Path:
        """The record folder of `project_dir`."""
        return record_dir(self.root, project_dir)

    def _private_folder(self, project_dir: Path) -> Path:
        folder = self.directory(project_dir)
        for path in (self.root, folder.parent, folder):
            _private_dir(path)
        return folder

    def load(self, project_dir: Path) -> Approval | None:
        """The approval of `project_dir`, None when there is none."""
        path = self._private_folder(project_dir) / RECORD_NAME
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or \
                    info.st_mode & 0o022:
                raise RecordError(f"{path}: not a regular file of yours that only you can "
                                  "write: refusing to use it")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(f"{path}: cannot read the approval record ({exc})") from None
        try:
            return Approval.from_json(json.loads(text))
        except (json.JSONDecodeError, ValueError) as exc:
            raise RecordError(f"{path}: {exc}; remove it and run `sidecar trust` again") from None

    def save(self, approval: Approval) -> Path:
        """Write the record atomically (0600); return its path."""
        folder = self._private_folder(Path(approval.project_dir))
        path = folder / RECORD_NAME
        stamped = replace(approval, approved_at=_now())
        text = json.dumps(stamped.to_json(), indent=1, sort_keys=False, ensure_ascii=False)
        atomic.write_atomic(str(path), (text + "\n").encode("utf-8"), 0o600)
        return path

    @contextlib.contextmanager
    def locked(self, project_dir: Path) -> Iterator[None]:
        """Hold the project's lock: one `sidecar up`/`trust` at a time per project folder."""
        folder = self._private_folder(project_dir)
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def private_folder(path: Path) -> Path:
    """Create `path` (and parents) 0700 under the state folder's rules (yours, writable by
    nobody else, tightened when readable by others); return it. For other stores beside the
    approvals (`sidecar auth`'s credentials)."""
    _private_dir(path)
    return path
