"""Path mapping: translate paths Claude sees into the paths of the target container.

A mapping `/workspace -> /var/www/html` matches whole path components only: it maps
`/workspace` and `/workspace/src/a.php`, never `/workspace2/x`. Mappings are tried longest
prefix first (bridge.yaml loading sorts them).
"""

from __future__ import annotations

Mappings = tuple[tuple[str, str], ...]


def is_within(path: str, root: str) -> bool:
    """True when normalized `path` is `root` or lies under it, on whole path components."""
    return root in (path, "/") or path.startswith(root.rstrip("/") + "/")


def map_path(path: str, mappings: Mappings) -> str | None:
    """The mapped absolute path, or None when no mapping matches."""
    for prefix, target in mappings:
        if not is_within(path, prefix):
            continue
        rest = "" if path == prefix else path[len(prefix.rstrip("/")):]
        if target == "/":
            return rest or "/"
        return target + rest
    return None


def map_arg(arg: str, mappings: Mappings) -> str:
    """Map one argument: an absolute path, or the value of `--opt=/path` / `-o=/path`."""
    if not mappings:
        return arg
    if arg.startswith("/"):
        mapped = map_path(arg, mappings)
        return arg if mapped is None else mapped
    if arg.startswith("-"):
        option, sep, value = arg.partition("=")
        if sep and value.startswith("/"):
            mapped = map_path(value, mappings)
            if mapped is not None:
                return option + "=" + mapped
    return arg


def map_args(args: list[str], mappings: Mappings) -> list[str]:
    """Map every argument."""
    return [map_arg(arg, mappings) for arg in args] if mappings else list(args)


def pick_workdir(cwd: str, mappings: Mappings, workdir: str | None) -> str:
    """The caller's CWD translated when a mapping matches, else `workdir`, else the CWD."""
    mapped = map_path(cwd, mappings)
    if mapped is not None:
        return mapped
    return workdir or cwd
