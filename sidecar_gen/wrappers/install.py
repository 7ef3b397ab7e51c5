"""`sidecar install-wrappers`: the route cache, the launcher and one symlink per command.

DIR gets a small launcher script (`.sidecar-dispatch`, run by this very interpreter with
`-I -S` so start-up stays fast and the agent's PYTHON* variables are ignored) and a symlink
`NAME -> .sidecar-dispatch` per routed command. Only symlinks pointing to the launcher are ever
removed; any other file in DIR is left alone.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import sidecar_gen
from sidecar_gen.config import find_config
from sidecar_gen.errors import ConfigError, InputError
from sidecar_gen.fsutil import write_atomic
from sidecar_gen.runtime.dispatch import LAUNCHER_NAME
from sidecar_gen.wrappers.routes import refresh_routes

_LAUNCHER = """\
{shebang}
# claude-sidecar dispatcher launcher, written by `sidecar install-wrappers`; do not edit.
# Each symlink next to this file is a routed command; the symlink's name is the command.
import os, sys
sys.path.insert(0, {package_parent!r})
from sidecar_gen.runtime import dispatch
dispatch.SLOW_PATH[:] = {slow_path!r}
# os._exit: all output went through os.write, and interpreter teardown costs ~2 ms per command.
os._exit(dispatch.main())
"""


@dataclass
class WrapperReport:
    """What install-wrappers did, as data."""

    directory: Path
    launcher: Path
    config: Path
    launcher_status: str = "ok"  # created, updated or ok
    cache: str | None = None
    created: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def launcher_text(python: str | None = None) -> str:
    """The launcher script for this installation."""
    interpreter = python or sys.executable
    package_parent = str(Path(sidecar_gen.__file__).resolve().parent.parent)
    slow_path = [entry for entry in sys.path if entry and os.path.isdir(entry)]
    if len(interpreter) < 100 and not any(c.isspace() for c in interpreter):
        shebang = f"#!{interpreter} -IS"
    else:
        # The kernel neither unquotes nor allows long `#!` lines: let sh start Python. The
        # second line is a bare string to Python and an exec to sh.
        quoted = "'" + interpreter.replace("'", "'\\''") + "'"
        shebang = "#!/bin/sh\n''''exec " + quoted + ' -IS "$0" "$@" # ' + "'''"
    return _LAUNCHER.format(shebang=shebang, package_parent=package_parent,
                            slow_path=slow_path)


def _is_ours(path: Path) -> bool:
    # Ours: a symlink to the launcher of this very directory (relative, as we create them).
    try:
        target = os.readlink(path)
    except OSError:
        return False
    if target == LAUNCHER_NAME:
        return True
    own = os.path.realpath(path.parent / LAUNCHER_NAME)
    return os.path.isabs(target) and os.path.realpath(target) == own


def _skip_reason(name: str) -> str | None:
    if name in (".", "..", LAUNCHER_NAME) or "/" in name or "\0" in name:
        return "not usable as a file name"
    return None


def _write_launcher(path: Path, text: str) -> str:
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise InputError(str(path), exc.strerror or "cannot read") from None
    if current == text and os.access(path, os.X_OK):
        return "ok"
    try:
        write_atomic(path, text, mode=0o755)
    except OSError as exc:
        raise InputError(str(path), exc.strerror or "cannot write") from None
    return "created" if current is None else "updated"


def install_wrappers(directory: Path, config: Path | None = None) -> WrapperReport:
    """Validate bridge.yaml, write the route cache, the launcher and the command symlinks.

    Raises ConfigError (invalid bridge.yaml, with findings) or InputError (missing config,
    unwritable directory).
    """
    config_path = find_config(config)
    routes, cache_file = refresh_routes(config_path)
    if directory.exists() and not directory.is_dir():
        raise InputError(str(directory), "not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(directory), exc.strerror or "cannot create") from None
    launcher = directory / LAUNCHER_NAME
    report = WrapperReport(directory=directory, launcher=launcher, config=config_path,
                           cache=cache_file)
    report.launcher_status = _write_launcher(launcher, launcher_text())
    commands = sorted(routes.commands)
    for name in commands:
        reason = _skip_reason(name)
        link = directory / name
        if reason is None and (link.exists() or link.is_symlink()) and not _is_ours(link):
            reason = "a file of that name exists and is not ours"
        if reason is not None:
            report.skipped.append((name, reason))
            continue
        if _is_ours(link):
            if os.readlink(link) == LAUNCHER_NAME:
                report.ok.append(name)
                continue
            link.unlink()
        try:
            os.symlink(LAUNCHER_NAME, link)
        except OSError as exc:
            raise InputError(str(link), exc.strerror or "cannot create symlink") from None
        report.created.append(name)
    wanted = set(commands)
    for entry in sorted(os.listdir(directory)):
        path = directory / entry
        if entry not in wanted and path.is_symlink() and _is_ours(path):
            path.unlink()
            report.removed.append(entry)
    return report


# -- at container start: never fail, explain a broken bridge.yaml ---------------------------


def salvage_command_names(config: Path) -> list[str]:
    """Names under `commands:` of a bridge.yaml that failed validation (best effort).

    The entrypoint installs wrappers for them anyway, so that running one of them explains
    what is wrong with bridge.yaml instead of answering "command not found".
    """
    from sidecar_gen import yamlio

    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    doc = yamlio.load_text(text, str(config)).plain
    commands = doc.get("commands") if isinstance(doc, dict) else None
    if not isinstance(commands, dict):
        return []
    return sorted(name for name in commands
                  if isinstance(name, str) and name and "/" not in name and "\0" not in name
                  and not name.startswith("."))


@dataclass
class BootWrappers:
    """What `boot_wrappers` did."""

    ok: bool
    message: str
    commands: list[str]


def boot_wrappers(directory: Path, config: Path) -> BootWrappers:
    """install-wrappers for the entrypoint: never fails, explains a broken bridge.yaml.

    With a valid file this is exactly `sidecar install-wrappers`. With an invalid one, the
    commands it names still get wrappers: the dispatcher re-reads the file on each call and
    prints the problem (exit 125), and starts working as soon as the file is fixed.
    """
    try:
        report = install_wrappers(directory, config)
    except (ConfigError, InputError) as exc:
        names = salvage_command_names(config)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            launcher = directory / LAUNCHER_NAME
            write_atomic(launcher, launcher_text(), mode=0o755)
            made = []
            for name in names:
                link = directory / name
                if not (link.exists() or link.is_symlink()):
                    os.symlink(LAUNCHER_NAME, link)
                    made.append(name)
        except OSError:
            made = []
        return BootWrappers(ok=False, message=exc.message, commands=made)
    commands = sorted(report.created + report.ok)
    return BootWrappers(ok=True, message=f"{len(commands)} routed command(s) from {config}",
                        commands=commands)
