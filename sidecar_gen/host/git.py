"""git on the host, running nothing the repository configures.

The agent writes the project folder, `.git/` included unless `sidecar up` protected it, and
git runs programs its configuration names: filters (with `.gitattributes` or
`.git/info/attributes` choosing them), textconv and external diff drivers, merge drivers,
credential helpers, `core.fsmonitor`, hooks, pagers, editors, `core.sshCommand`, `gpg.program`
and more, from `.git/config`, `config.worktree` and every file an `include.path` or
`includeIf.*.path` names. Every git command sidecar runs goes through `run`, which

- lists the configuration first, exactly as that command will see it but without following
  includes (`git config --list --no-includes`), then reads every file an include or an
  includeIf names, whatever its condition, itself (a FIFO there is refused by name instead of
  hanging git), to collect every driver name the configuration defines;
- gives the command, as command-line configuration (`GIT_CONFIG_COUNT`, read after every
  file), a neutral value for each program-running key of each of those names (`DRIVERS`), and
  fixed ones for the rest (`FIXED`): an empty program is refused by git, it runs nothing;
- runs it with no system configuration or attributes, no terminal prompt, `cat` as the pager,
  none of the caller's `GIT_*` variables, within the `git` time limit, in a process group of
  its own (`process`), and as root, as the owner of the folder it runs in.

What git runs from the user's own configuration (`~/.gitconfig`: a credential helper, git-lfs's
filter) is neutralized too: a repository can name such a driver in `.gitattributes`, and a
driver reads the repository's settings (git-lfs's transfer agents).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.host import process as hostproc

# Single keys, set whatever the configuration says.
FIXED: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("core.askPass", ""),
    ("core.sshCommand", ""),
    ("core.gitProxy", ""),
    ("core.alternateRefsCommand", ""),
    ("credential.helper", ""),  # an empty helper empties the list of helpers
    ("diff.external", ""),
    ("gpg.program", ""),
    ("interactive.diffFilter", ""),
    ("log.showSignature", "false"),
    ("protocol.allow", "never"),  # no transport: a partial clone's lazy fetch included
    ("submodule.recurse", "false"),  # a submodule's git would read its own configuration
    ("status.submoduleSummary", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
)
# `section.<name>.variable` keys that run a program: for every <name> the configuration
# defines in such a section, every listed variable gets its neutral value.
DRIVERS: dict[str, dict[str, str]] = {
    "filter": {"clean": "", "smudge": "", "process": "", "required": "false"},
    "diff": {"command": "", "textconv": ""},
    "merge": {"driver": ""},
    "credential": {"helper": ""},
    "difftool": {"cmd": "", "path": ""},
    "mergetool": {"cmd": "", "path": ""},
    "gpg": {"program": "", "defaultkeycommand": ""},
    "protocol": {"allow": "never"},
    "remote": {"uploadpack": "git-upload-pack", "receivepack": "git-receive-pack"},
    "tar": {"command": ""},
    "trailer": {"command": "", "cmd": ""},
    "browser": {"cmd": "", "path": ""},
    "man": {"cmd": "", "path": ""},
    "hook": {"command": ""},  # hooks defined in the configuration (newer git)
}
# `section.variable` keys whose every variable runs a program (`pager.log = evil`).
WHOLE_SECTIONS = {"pager": "false"}
INCLUDE_DEPTH = 10  # git's own limit
MAX_FILES = 64
MAX_OVERRIDES = 5000
MAX_CONFIG = 1 << 20


class GitError(SidecarError):
    """git failed, or its configuration cannot be made safe to run."""

    def __init__(self, message: str, *, exit_code: ExitCode = ExitCode.FINDINGS) -> None:
        super().__init__(message, exit_code=exit_code)


@dataclass(frozen=True)
class Place:
    """Where a git command runs: `cwd`, and the git directory and work tree when given
    (instead of what `cwd/.git` says)."""

    cwd: Path
    git_dir: Path | None = None
    work_tree: Path | None = None


def base_env(place: Place, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every git command: the caller's without its `GIT_*` variables,
    no system configuration or attributes, no prompts, no pager or editor."""
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if not k.startswith("GIT_") and k != "SSH_ASKPASS"}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_ATTR_NOSYSTEM": "1",
                "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "GIT_PAGER": "cat",
                "PAGER": "cat", "GIT_EDITOR": ":", "GIT_SEQUENCE_EDITOR": ":",
                "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    if place.git_dir is not None:
        env["GIT_DIR"] = str(place.git_dir)
    if place.work_tree is not None:
        env["GIT_WORK_TREE"] = str(place.work_tree)
    return env


def with_config(env: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """`env` plus `pairs` as command-line configuration (`GIT_CONFIG_COUNT`: a name with `=`
    in it, which `-c` cannot carry, is fine)."""
    out = dict(env)
    out["GIT_CONFIG_COUNT"] = str(len(pairs))
    for index, (key, value) in enumerate(pairs):
        out[f"GIT_CONFIG_KEY_{index}"] = key
        out[f"GIT_CONFIG_VALUE_{index}"] = value
    return out


def _git_argv() -> list[str]:
    found = shutil.which("git")
    if found is None:
        raise GitError("git is not installed", exit_code=ExitCode.USAGE)
    return [found, "--no-pager"]


def _last_line(text: str, fallback: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else fallback
    return line if len(line) <= 300 else line[:297] + "..."


def _list(place: Place, env: Mapping[str, str], identity: hostproc.Identity | None,
          *source: str) -> list[tuple[str, str, str]]:
    """(origin, key, value) of every entry `git config --list` shows, includes not followed."""
    argv = [*_git_argv(), "config", *source, "--list", "-z", "--show-origin", "--no-includes"]
    done = hostproc.run(hostproc.HostCommand(argv, "git", f"git config --list in {place.cwd}",
                                      cwd=place.cwd, env=env, identity=identity))
    if done.returncode != 0:
        raise GitError(f"git cannot read the configuration of {place.cwd}: "
                       f"{_last_line(done.stderr, f'exit {done.returncode}')}")
    fields = done.stdout.split("\0")
    out = []
    for index in range(0, len(fields) - 1, 2):
        key, _, value = fields[index + 1].partition("\n")
        out.append((fields[index], key, value))
    return out


def _split(key: str) -> tuple[str, str | None, str]:
    """`section.sub.section.variable` -> (section, subsection or None, variable)."""
    section, _, rest = key.partition(".")
    sub, dot, variable = rest.rpartition(".")
    return section.lower(), (sub if dot else None), variable.lower()


def _include_target(origin: str, value: str, place: Place, env: Mapping[str, str]
                    ) -> Path | None:
    """The file an include names, resolved as git does (None: a command-line include)."""
    if not origin.startswith("file:") or not value:
        return None
    if value == "~" or value.startswith("~/"):
        home = env.get("HOME") or os.path.expanduser("~")
        return Path(os.path.normpath(home + value[1:]))
    path = Path(value)
    if path.is_absolute():
        return path
    including = Path(origin.removeprefix("file:"))
    if not including.is_absolute():
        including = place.cwd / including
    return Path(os.path.normpath(including.parent / path))


def _checked(path: Path) -> bool:
    """True when `path` is a regular file git can read as configuration; False when absent
    (git skips it); GitError for a FIFO, a device, a socket or a huge file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False  # absent or unreadable: git skips an include it cannot open
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        return False
    if not stat.S_ISREG(info.st_mode):
        raise GitError(f"{path}: a git configuration file that is not a regular file (a FIFO "
                       "or a device would hang git): refusing to run git; remove it, or the "
                       "include that names it", exit_code=ExitCode.USAGE)
    if info.st_size > MAX_CONFIG:
        raise GitError(f"{path}: a git configuration file over 1 MiB: refusing to run git",
                       exit_code=ExitCode.USAGE)
    return True


def _is_include(key: str) -> bool:
    section, sub, variable = _split(key)
    return variable == "path" and (section, sub is None) in (("include", True),
                                                             ("includeif", False))


@dataclass
class Walk:
    """Every configuration entry a git command could see (`entries`: origin, key, value) and
    every file an include or includeIf names (`included`, absent ones too), all conditions
    taken as true, to INCLUDE_DEPTH. A FIFO or device among them raises GitError by name."""

    entries: list[tuple[str, str, str]]
    included: list[Path]


def walk_config(place: Place, env: Mapping[str, str] | None = None,
                identity: hostproc.Identity | None = None,
                roots: Sequence[Path] | None = None) -> Walk:
    """The configuration of a command at `place` (or of the files `roots` only), read without
    letting git follow includes: they are followed here, each file checked first."""
    env = with_config(base_env(place), list(FIXED)) if env is None else env
    if roots is None:
        first = _list(place, env, identity)
    else:
        first = []
        for root in roots:
            if _checked(root):
                first += _list(place, env, identity, "--file", str(root))
    walk = Walk([], [])
    todo = [(entry, 0) for entry in first]
    seen: set[Path] = set()
    while todo:
        (origin, key, value), depth = todo.pop(0)
        walk.entries.append((origin, key, value))
        if not _is_include(key):
            continue
        target = _include_target(origin, value, place, env)
        if target is None or depth >= INCLUDE_DEPTH or target in seen:
            continue
        seen.add(target)
        walk.included.append(target)
        if len(seen) > MAX_FILES:
            raise GitError(f"the git configuration of {place.cwd} includes more than "
                           f"{MAX_FILES} files: refusing to run git", exit_code=ExitCode.USAGE)
        if _checked(target):
            try:
                found = _list(place, env, identity, "--file", str(target))
            except GitError:
                continue  # git cannot read it either (as that user), so it skips it
            todo.extend((entry, depth + 1) for entry in found)
    return walk


def file_entries(path: Path, cwd: Path) -> list[tuple[str, str]]:
    """(key, value) of the entries written in the configuration file `path` itself (its
    includes not followed); GitError when git cannot read it, or it is not a regular file."""
    if not _checked(path):
        raise GitError(f"{path}: cannot read it")
    place = Place(cwd)
    listing = _list(place, with_config(base_env(place), list(FIXED)), None, "--file",
                    str(path))
    return [(key, value) for _, key, value in listing]


def neutral_config(entries: Sequence[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """The command-line configuration that disables every program `entries` could make git
    run: `FIXED`, then each driver name's neutral values (`DRIVERS`, `WHOLE_SECTIONS`)."""
    pairs: dict[str, str] = dict(FIXED)
    for _, key, _ in entries:
        section, sub, variable = _split(key)
        if sub is not None and section in DRIVERS:
            for name, value in DRIVERS[section].items():
                pairs[f"{section}.{sub}.{name}"] = value
        elif sub is None and section in WHOLE_SECTIONS:
            pairs[f"{section}.{variable}"] = WHOLE_SECTIONS[section]
        if len(pairs) > MAX_OVERRIDES:
            raise GitError(f"the git configuration defines more than {MAX_OVERRIDES} drivers: "
                           "refusing to run git", exit_code=ExitCode.USAGE)
    return list(pairs.items())


def safe_env(place: Place, identity: hostproc.Identity | None = None,
             environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a git command at `place` runs with: `base_env` and the neutral
    configuration of what it would read now."""
    env = base_env(place, environ)
    walk = walk_config(place, with_config(env, list(FIXED)), identity)
    return with_config(env, neutral_config(walk.entries))


def _home(uid: int) -> str:
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        return "/nonexistent"
    return home if os.path.isdir(home) else "/nonexistent"


def run(place: Place, *args: str, check: bool = True,
        identity: hostproc.Identity | None = None, input_text: str | None = None,
        environ: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `git ARGS...` at `place`, executing nothing the configuration names (see the module
    docstring); as root, as `identity` (default: the owner of `place.cwd`). GitError with
    git's last line when it fails and `check`."""
    if identity is None:
        identity = hostproc.owner_identity(place.cwd)
    source = dict(os.environ if environ is None else environ)
    if identity is not None:
        # Git as the project's owner reads that user's configuration, not root's (which it
        # could not read anyway).
        source.pop("XDG_CONFIG_HOME", None)
        source["HOME"] = _home(identity.uid)
    env = safe_env(place, identity, source)
    done = hostproc.run(hostproc.HostCommand([*_git_argv(), *args], "git",
                                      f"git {args[0] if args else ''} in {place.cwd}",
                                      cwd=place.cwd, env=env, input=input_text,
                                      identity=identity))
    if check and done.returncode != 0:
        raise GitError(f"git {args[0] if args else ''} failed in {place.cwd}: "
                       f"{_last_line(done.stderr, f'exit {done.returncode}')}")
    return done
