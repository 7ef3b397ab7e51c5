"""The project as it is now: compose's effective model, the files behind it, the policy.

The model is what `docker compose config` resolves in the folder with the user's environment.
Before it is stored or compared, every `environment:` and `build.args` value of a secret (by
its name: `secrets.is_secret`) is replaced by a keyed digest (`record.ApprovalStore.digest`), so a
secret from the environment or `.env` is never written to the record in clear text, yet any
change of it still shows as a change; every other value stays as it is, to be read in a diff.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar_gen import __version__
from sidecar_gen.compose.cli import (
    ComposeTarget,
    ResolvedModel,
    parse_version,
    resolve_model,
    start_version,
)
from sidecar_gen.errors import InputError
from sidecar_gen.fsutil import open_regular, read_text_file
from sidecar_gen.runtime.names import BROKER_CA, CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME
from sidecar_gen.trust.gitfiles import GitFiles, git_files
from sidecar_gen.trust.inputs import MAX_READ, Input, compose_inputs
from sidecar_gen.trust.record import Approval, ApprovalStore, FileState
from sidecar_gen.trust.secrets import Masker

MAX_INPUT = 16 << 20
POLICY_FILES = (CONFIG_NAME, DOMAINS_NAME)  # what the sidecar-policy volume holds


@dataclass(frozen=True)
class Snapshot:
    """The project now. `resolved` and `masks` hold clear-text secrets: never stored."""

    target: ComposeTarget
    resolved: ResolvedModel
    model: dict[str, Any]
    files: dict[str, FileState]
    policy: dict[str, str]
    compose_version: str | None
    masks: Masker | None = field(default=None, compare=False, repr=False)
    git: GitFiles = field(default_factory=GitFiles)
    # `up`'s reuse of the last verified resolution (`trust.resolved`): the key of the inputs,
    # whether the model came from there, and compose's output as it was (before the pins).
    input_key: str | None = None
    cached: bool = False
    unpinned: ResolvedModel | None = field(default=None, compare=False, repr=False)
    inputs: list[Input] = field(default_factory=list, compare=False, repr=False)
    routed: bool = True  # whether the approved policy limits routed services (from the cache)

    @property
    def project_dir(self) -> Path:
        """The project folder (real path)."""
        return Path(os.path.realpath(self.target.directory))

    def approval(self) -> Approval:
        """This snapshot as the record of an approval."""
        return Approval(project_dir=str(self.project_dir),
                        compose_project=self.resolved.name, model=self.model,
                        files=self.files, policy=self.policy,
                        sidecar_version=__version__, compose_version=self.compose_version,
                        git=self.git.states)


RESOLVED_KEY = "x-sidecar-resolved"


def _resolved(path: Any) -> str | None:
    """The real path behind a host path when a symbolic link makes it another, else None."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return None
    real = os.path.realpath(path)
    return real if real != os.path.normpath(path) else None


def _pin_sources(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with the real path of each host path it names (bind sources, build contexts,
    `file:` of configs and secrets, a local volume's `device`) next to it, when a link makes
    it another.

    The engine follows links when it mounts a bind source or reads a build context, at every
    start: an agent that swaps `./data` for a link to `/home/you` leaves compose's model as it
    was, yet the next start would mount your home into the service. With the real path in the
    compared model, that swap is a change `up` refuses; a folder without links is unchanged.
    """
    out = dict(spec)
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        out["volumes"] = [
            {**v, RESOLVED_KEY: real} if isinstance(v, dict) and v.get("type") == "bind"
            and (real := _resolved(v.get("source"))) else v for v in volumes]
    build = spec.get("build")
    if isinstance(build, dict):
        pins = {f"context={real}"} if (real := _resolved(build.get("context"))) else set()
        extra = build.get("additional_contexts")
        for name, path in (extra.items() if isinstance(extra, dict) else ()):
            if real := _resolved(path):
                pins.add(f"{name}={real}")
        if pins:
            out["build"] = {**build, RESOLVED_KEY: sorted(pins)}
    if real := _resolved(spec.get("file")):
        out[RESOLVED_KEY] = real
    options = spec.get("driver_opts")  # a local volume that is a bind in disguise
    if isinstance(options, dict) and (real := _resolved(options.get("device"))):
        out[RESOLVED_KEY] = real
    return out


DOCKERFILE_KEY = "x-sidecar-dockerfile"


def dockerfiles(doc: Mapping[str, Any]) -> dict[str, Path]:
    """The Dockerfile each service with a local `build:` context is built from, by service.

    It decides what runs in the service (base image, `USER`, every step) and compose reads it
    only when it builds, so its digest is part of the compared model (`DOCKERFILE_KEY`).
    """
    found: dict[str, Path] = {}
    services = doc.get("services")
    for name, spec in (services.items() if isinstance(services, dict) else ()):
        build = spec.get("build") if isinstance(spec, dict) else None
        context = build.get("context") if isinstance(build, dict) else None
        if not isinstance(context, str) or not os.path.isabs(context):
            continue  # a remote context (git, URL): its content is not in the folder
        assert isinstance(build, dict)
        if build.get("dockerfile_inline") is not None:
            continue  # in the model already
        dockerfile = build.get("dockerfile") or "Dockerfile"
        found[str(name)] = Path(context) / str(dockerfile)
    return found


def normalize_model(doc: dict[str, Any], masker: Masker,
                    built: Mapping[str, FileState] | None = None) -> dict[str, Any]:
    """The model as stored: the environment and build-arg values of secrets replaced by keyed
    digests (`masker`), the real path of every host path a link redirects (`_pin_sources`),
    and the digest of each built service's Dockerfile (`built`, by service)."""
    model = dict(doc)
    for section in ("configs", "secrets", "volumes"):
        entries = doc.get(section)
        if isinstance(entries, dict):
            model[section] = {name: _pin_sources(entry) if isinstance(entry, dict) else entry
                              for name, entry in entries.items()}
    services = doc.get("services")
    if isinstance(services, dict):
        model["services"] = {}
        for name, spec in services.items():
            masked = _pin_sources(spec) if isinstance(spec, dict) else spec
            if isinstance(masked, dict):
                if "environment" in masked:
                    masked["environment"] = masker.mapping(masked["environment"])
                build = masked.get("build")
                if isinstance(build, dict) and "args" in build:
                    masked["build"] = build = {**build,
                                               "args": masker.mapping(build["args"])}
                if isinstance(build, dict) and built and name in built:
                    masked["build"] = {**build, DOCKERFILE_KEY: built[name].digest}
            model["services"][name] = masked
    return model


def display_name(path: Path, project_dir: Path) -> str:
    """Where the bytes really are: relative to the project folder when inside it, else the
    absolute real path (a `.env` made a link to a file elsewhere is named by that file)."""
    real = path.resolve()
    try:
        return real.relative_to(project_dir).as_posix()
    except ValueError:
        return str(real)


def file_state(path: Path, store: ApprovalStore, *, env_file: bool,
               masker: Masker | None = None) -> FileState:
    """The keyed digest of a file and a copy of it for diffs (None digest: missing; an env
    file's copy with its secrets masked by `masker`).

    Read through `fsutil.open_regular` in chunks: a FIFO or a device planted under a name
    compose may read, or a file over MAX_INPUT (a sparse terabyte would take hours to hash),
    is refused by name (`InputError`); only files up to MAX_READ are copied for diffs.
    """
    try:
        fd = open_regular(path)
    except InputError as exc:
        if exc.reason == "no such file" or isinstance(exc.__context__, NotADirectoryError):
            return FileState(None)
        if exc.reason == "is a directory, not a file":
            return FileState(store.digest(b"<directory>"), "(a directory)\n")
        if exc.reason.startswith("cannot read"):
            return FileState(store.digest(f"<unreadable: {exc.reason}>".encode()),
                             f"(unreadable: {exc.reason})\n")
        raise
    size = os.fstat(fd).st_size
    if size > MAX_INPUT:
        os.close(fd)
        raise InputError(str(path), f"is larger than {MAX_INPUT // (1 << 20)} MiB, more than "
                                    "any compose or env file (remove it)")
    head = bytearray()

    def chunks() -> Iterator[bytes]:
        while chunk := handle.read(1 << 20):
            if len(head) <= MAX_READ:
                head.extend(chunk[:MAX_READ + 1 - len(head)])
            yield chunk

    with os.fdopen(fd, "rb") as handle:
        digest = store.digest_chunks(chunks())
    text: str | None
    try:
        text = head.decode("utf-8") if len(head) <= MAX_READ else None
    except UnicodeDecodeError:
        text = None
    if text is not None and env_file:
        text = (masker or Masker(store)).env_text(text)
    return FileState(digest, text)


def read_policy_file(path: Path) -> str:
    """A policy file's text: a regular file in a real `.sidecar/` folder, never a symlink.

    What is read here goes into the policy volume the agent reads: a link planted through a
    target (`bridge.yaml -> ~/.ssh/id_rsa`) must not carry a host file there.
    """
    for part in (path.parent, path):
        try:
            info = part.lstat()
        except FileNotFoundError:
            raise InputError(str(path), "no such file (run `sidecar init` and `sidecar render` "
                                        "first)") from None
        if stat.S_ISLNK(info.st_mode):
            raise InputError(str(part), "is a symbolic link: the policy must be a plain file "
                                        "in the project's .sidecar/ folder")
    if not stat.S_ISREG(path.lstat().st_mode):
        raise InputError(str(path), "not a regular file")
    return read_text_file(path)


def take_snapshot(target: ComposeTarget, store: ApprovalStore, *,
                  reuse: Approval | None = None) -> Snapshot:
    """Resolve the model with compose and read every input file and the policy.

    With `reuse` (the approval `sidecar up` compares with), the last verified resolution is
    taken instead of asking compose again when the keyed digest of everything it depends on
    is unchanged (`trust.resolved`); the snapshot's `input_key` is that digest either way.
    """
    from sidecar_gen.trust import resolved as cache

    directory = target.directory
    env = target.environ()
    masker = Masker(store)
    git = git_files(directory, store)
    found = cache.load(store, directory) if reuse is not None else None
    model: ResolvedModel | None = None
    key: str | None = None
    inputs: list[Input] = []
    files: dict[str, FileState] = {}
    if found is not None and reuse is not None:
        inputs = found.inputs
        files = input_files(directory, store, env, masker, inputs, bounds=False)
        key = cache.input_key(store, directory, env, files=files, git=git.states,
                              named=_named(found.model, store), approval=reuse)
        if key == found.key:
            model, compose = found.model, found.compose_version
        else:
            cache.forget(store, directory)
            found = None
    if model is None:
        # The files first: one compose would wait on for ever (a FIFO) or spend minutes
        # expanding (an alias bomb) is refused by its name.
        inputs = compose_inputs(directory, env)
        files = input_files(directory, store, env, masker, inputs)
        version = start_version(target)  # meanwhile, the model
        with version or contextlib.nullcontext():
            model = resolve_model(target)
            compose = parse_version(version)
        if reuse is not None:
            key = cache.input_key(store, directory, env, files=files, git=git.states,
                                  named=_named(model, store), approval=reuse)
    policy = read_policy(directory)
    sources = dockerfiles(model.doc)
    built = {name: file_state(path, store, env_file=False) for name, path in sources.items()}
    project_dir = Path(os.path.realpath(directory))
    for name, path in sources.items():
        files[display_name(path, project_dir)] = built[name]
    for path in mounted_ca_files(model.doc):
        # What the broker trusts decides where the real credential may go: its bytes are
        # approved, not only its path.
        files[display_name(path, project_dir)] = file_state(path, store, env_file=False)
    return Snapshot(target=target, resolved=pin_dockerfiles(model, built),
                    model=normalize_model(model.doc, masker, built), files=files,
                    policy=policy, compose_version=compose, masks=masker, git=git,
                    input_key=key, cached=found is not None, unpinned=model, inputs=inputs,
                    routed=found.routed if found is not None else True)


def _named(model: ResolvedModel, store: ApprovalStore) -> dict[str, FileState]:
    """The files `model` names that decide it (its Dockerfiles, `resolved.model_files`), by
    path."""
    from sidecar_gen.trust.resolved import model_files

    paths = {*dockerfiles(model.doc).values(), *model_files(model.doc)}
    return {str(path): file_state(path, store, env_file=False) for path in sorted(paths)}


def mounted_ca_files(doc: Mapping[str, Any]) -> list[Path]:
    """The host files mounted as the broker's extra CA certificates (`BROKER_CA`)."""
    out = []
    for spec in (doc.get("services") or {}).values():
        for mount in (spec.get("volumes") or []) if isinstance(spec, dict) else ():
            if isinstance(mount, dict) and mount.get("type") == "bind" \
                    and mount.get("target") == BROKER_CA and isinstance(mount.get("source"), str):
                out.append(Path(mount["source"].replace("$$", "$")))
    return out


def pin_dockerfiles(resolved: ResolvedModel, built: Mapping[str, FileState]) -> ResolvedModel:
    """`resolved` with each checked Dockerfile inlined (`dockerfile_inline`, `$` escaped as
    compose wants), so a build at the start uses the bytes that were checked, not what the
    agent writes into the file between the check and the build. Compose leaves `build` out of
    a service's configuration hash: no container is recreated for it. A Dockerfile that cannot
    be inlined (not UTF-8, over 1 MiB) stays a file."""
    texts = {name: state.text for name, state in built.items() if state.text is not None}
    if not texts:
        return resolved
    doc = json.loads(resolved.text)
    for name, text in texts.items():
        build = {k: v for k, v in doc["services"][name]["build"].items() if k != "dockerfile"}
        doc["services"][name]["build"] = {**build, "dockerfile_inline": text.replace("$", "$$")}
    return ResolvedModel(json.dumps(doc), doc)


def read_policy(directory: Path) -> dict[str, str]:
    """The project's policy files (bridge.yaml, the allowlist) by name."""
    return {name: read_policy_file(directory / CONFIG_DIR / name) for name in POLICY_FILES}


def input_files(directory: Path, store: ApprovalStore, env: Mapping[str, str],
                masker: Masker | None = None, inputs: list[Input] | None = None, *,
                bounds: bool = True) -> dict[str, FileState]:
    """Every file that decides how the project at `directory` starts (compose files, env
    files, the policy), by its name relative to the folder, as the record keeps them.

    `inputs`: compose's files as found already (None: find them now). `bounds` refuses a
    compose file over the loader's bounds before compose reads it (`trust.resolved` skips
    it when compose will not read them: its key proves them the files resolved before)."""
    project_dir = Path(os.path.realpath(directory))
    masker = masker or Masker(store)
    found = compose_inputs(directory, env) if inputs is None else inputs
    files: dict[str, FileState] = {}
    for item in found:
        files[display_name(item.path, project_dir)] = file_state(
            item.path, store, env_file=item.kind == "env", masker=masker)
    if bounds:
        from sidecar_gen.compose.reader import check_bounds  # the YAML parser: not when reused

        check_bounds(item.path for item in found if item.kind == "compose")
    for name in POLICY_FILES:
        files[f"{CONFIG_DIR}/{name}"] = file_state(directory / CONFIG_DIR / name, store,
                                                   env_file=False)
    return files
