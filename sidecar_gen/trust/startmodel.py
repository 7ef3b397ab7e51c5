"""The verified model as `sidecar up` starts it: what is added after the check.

The approval compares compose's own model; `sidecar up` then starts that model with additions
that only restrict, each a small pure function of the document (`read_only_git`, applied by
`started_model`; `with_placeholder`: the broker's placeholder of the credential kind in force,
never a real value).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sidecar_gen.broker.credentials import API_KEY, PLACEHOLDER
from sidecar_gen.compose.cli import ResolvedModel
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.names import API_KEY_ENV, BASE_URL_ENV, OAUTH_TOKEN_ENV

# The variable Claude Code reads each kind of credential from.
CREDENTIAL_ENV = {API_KEY: API_KEY_ENV, "oauth-token": OAUTH_TOKEN_ENV}


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def read_only_git(doc: Mapping[str, Any], protect: Sequence[str],
                  real: Mapping[str, str]) -> dict[str, Any]:
    """`doc` with each path of `protect` (real paths: the repository's config, hooks, ...)
    mounted read-only wherever a service's bind mount shows it, at the place it appears in
    that container; a bind mount that shows only protected content becomes read-only itself.

    `real` maps a bind source to its real path (the engine follows links when it mounts).
    Mounts that are read-only already, volumes and tmpfs are left alone.
    """
    out = dict(doc)
    services = doc.get("services")
    if not isinstance(services, dict):
        return out
    out["services"] = {}
    for name, spec in services.items():
        volumes = spec.get("volumes") if isinstance(spec, dict) else None
        if not isinstance(volumes, list):
            out["services"][name] = spec
            continue
        mounts = list(volumes)
        targets = {m.get("target") for m in volumes if isinstance(m, dict)}
        for index, mount in enumerate(volumes):
            if not isinstance(mount, dict) or mount.get("type") != "bind" \
                    or mount.get("read_only") or not isinstance(mount.get("source"), str):
                continue
            source = real.get(mount["source"], mount["source"]).rstrip("/") or "/"
            for path in protect:
                if _under(source, path):
                    mounts[index] = {**mount, "read_only": True}
                elif _under(path, source):
                    target = str(mount["target"]).rstrip("/") + path[len(source.rstrip("/")):]
                    if target not in targets:
                        targets.add(target)
                        mounts.append({"type": "bind", "source": path, "target": target,
                                       "read_only": True, "bind": {"create_host_path": False}})
        out["services"][name] = {**spec, "volumes": mounts}
    return out


def _escaped(value: Any) -> Any:
    """Paths as compose reads them back (`$` is `$$` in a model it interpolates again)."""
    return value.replace("$", "$$") if isinstance(value, str) else value


def started_model(resolved: ResolvedModel, protect: Sequence[Path]) -> ResolvedModel:
    """The model `sidecar up` hands compose: `resolved` (the verified one) with `read_only_git`
    applied for the paths in `protect` (those that exist now)."""
    paths = [os.path.realpath(p) for p in protect if os.path.lexists(p)]
    if not paths:
        return resolved
    # The text, not the parsed document: compose printed `$` as `$$` in it (see compose.cli).
    doc = json.loads(resolved.text)
    sources = {str(m["source"]) for spec in (doc.get("services") or {}).values()
               if isinstance(spec, dict) for m in spec.get("volumes") or []
               if isinstance(m, dict) and isinstance(m.get("source"), str)}
    real = {source: os.path.realpath(source.replace("$$", "$")) for source in sources}
    changed = read_only_git(doc, [_escaped(p) for p in paths],
                            {k: _escaped(v) for k, v in real.items()})
    return ResolvedModel(json.dumps(changed), changed)


def with_placeholder(resolved: ResolvedModel, kind: str | None) -> ResolvedModel:
    """`resolved` with, in each claude service that talks to the broker (its environment sets
    ANTHROPIC_BASE_URL), the placeholder of `kind` (an API key when none is configured) in the
    variable Claude Code reads that kind from, and the other kind's variable removed: Claude
    Code sends an API key as `x-api-key`, an OAuth token as a Bearer with its beta header."""
    kind = kind or API_KEY
    doc = json.loads(resolved.text)
    changed = False
    for spec in (doc.get("services") or {}).values():
        labels = spec.get("labels") if isinstance(spec, dict) else None
        env = spec.get("environment") if isinstance(spec, dict) else None
        if not isinstance(labels, dict) or labels.get(contract.ROLE_LABEL) != \
                contract.ROLE_CLAUDE or not isinstance(env, dict) or BASE_URL_ENV not in env:
            continue
        for name in CREDENTIAL_ENV.values():
            env.pop(name, None)
        env[CREDENTIAL_ENV[kind]] = PLACEHOLDER[kind]
        changed = True
    return ResolvedModel(json.dumps(doc), doc) if changed else resolved
