"""A command bridge.yaml does not route: run the local program of that name, if there is one."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # builtin; `signal` imports enum
import os

from sidecar_gen.runtime.errors import NOT_EXECUTABLE, DispatchError

# typing and collections.abc cost milliseconds to import on every command: types are for mypy
# only (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def find_native(name: str, wrapper_dir: str, launcher: str,
                environ: Mapping[str, str]) -> str | None:
    """The first `name` on PATH that is neither in `wrapper_dir` nor a link to `launcher`
    (so a wrapper never finds itself, however its directory is spelled on PATH)."""
    own = os.path.realpath(wrapper_dir)
    launcher_path = os.path.realpath(os.path.join(wrapper_dir, launcher))
    for entry in environ.get("PATH", os.defpath).split(":"):
        directory = entry or "."
        if os.path.realpath(directory) == own:
            continue
        candidate = os.path.join(directory, name)
        if (
            os.access(candidate, os.X_OK)
            and not os.path.isdir(candidate)
            and os.path.realpath(candidate) != launcher_path
        ):
            return candidate
    return None


def exec_native(path: str, name: str, args: list[str]) -> int:
    """Replace this process with the program at `path` (returns only by raising)."""
    # Python ignores SIGPIPE (and SIGXFSZ); an exec'd program must get the defaults back.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    try:
        os.execv(path, [name, *args])  # noqa: S606 - the user's own command
    except OSError as exc:
        raise DispatchError(f"cannot run {path}: {exc.strerror}", NOT_EXECUTABLE) from None
    return NOT_EXECUTABLE  # pragma: no cover - execv does not return
