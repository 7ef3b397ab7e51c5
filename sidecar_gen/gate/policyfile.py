"""The approved policy: the bridge.yaml the gate enforces, read once, never from the workspace.

`sidecar up` on the host copies the bridge.yaml the user approved into the `sidecar-policy`
volume, mounted read-only at /run/sidecar/policy; the gate reads it at start and on SIGHUP
only (no reload on file changes: nothing the agent writes takes effect by itself). A missing
or invalid file refuses everything. The workspace copy (`.sidecar/bridge.yaml`, which the
agent may be able to write through a routed command) is only compared with it, to say so in
one log line when they differ.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sidecar_gen.errors import SidecarError
from sidecar_gen.gate.policy import Policy
from sidecar_gen.model import Bridge

MAX_POLICY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PolicyState:
    """The policy in force: what `--config` held when it was (re)loaded."""

    policy: Policy
    digest: str | None  # hex SHA-256 of the loaded bytes; None when nothing usable is loaded
    error: str | None = None  # why every request is refused

    @property
    def header(self) -> str:
        """The `X-Sidecar-Policy` value: `sha256:<hex>` or `none`."""
        return f"sha256:{self.digest}" if self.digest else "none"


def read_regular(path: Path, limit: int = MAX_POLICY_BYTES) -> bytes:
    """The bytes of a regular file, never following a symlink, never blocking on a FIFO or a
    device, at most `limit` bytes; OSError or ValueError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > limit:
                raise ValueError(f"larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def from_bridge(bridge: Bridge, *, strict: bool, environ: Mapping[str, str]) -> PolicyState:
    """A fixed policy (embedders and tests); its digest is that of the model's repr."""
    digest = hashlib.sha256(repr(bridge).encode()).hexdigest()
    return PolicyState(Policy.from_bridge(bridge, strict=strict, environ=environ), digest)


def load(path: Path | None, *, strict: bool,
         environ: Mapping[str, str]) -> tuple[PolicyState, str]:
    """Read and validate the approved bridge.yaml once: (state, the one log line saying so)."""
    from sidecar_gen.config import bridge_from_text

    if path is None:
        error = "no policy file configured (--config)"
        return PolicyState(Policy.deny_all(), None, error), f"sidecar gate: {error}: refusing " \
            "every request"
    try:
        data = read_regular(path)
    except FileNotFoundError:
        error = f"no approved policy at {path}"
        return PolicyState(Policy.deny_all(), None, f"{error}: run `sidecar up` on the host"), (
            f"sidecar gate: {error}: refusing every request; run `sidecar up` on the host to "
            "approve .sidecar/bridge.yaml and start the stack")
    except (OSError, ValueError) as exc:
        return _unusable(path, f"cannot read it: {getattr(exc, 'strerror', None) or exc}")
    digest = hashlib.sha256(data).hexdigest()
    try:
        bridge = bridge_from_text(data.decode("utf-8"), str(path))
    except UnicodeDecodeError as exc:
        return _unusable(path, f"not UTF-8 text (byte {exc.start})")
    except SidecarError as exc:
        return _unusable(path, str(exc))
    policy = Policy.from_bridge(bridge, strict=strict, environ=environ)
    return PolicyState(policy, digest), (
        f"sidecar gate: policy sha256:{digest} loaded from {path} "
        f"({len(policy.rules)} container name(s){', strict' if strict else ''})")


def _unusable(path: Path, reason: str) -> tuple[PolicyState, str]:
    error = f"the approved policy {path} is unusable: {reason}"
    return (PolicyState(Policy.deny_all(), None,
                        f"{error}; fix .sidecar/bridge.yaml, then run `sidecar up` on the host"),
            f"sidecar gate: {error}: refusing every request; fix .sidecar/bridge.yaml, then run "
            "`sidecar up` on the host")


def compare_workspace(state: PolicyState, workspace: Path | None) -> str | None:
    """One log line when the workspace's bridge.yaml is not the approved one, else None."""
    if workspace is None:
        return None
    try:
        data: bytes | None = read_regular(workspace)
    except FileNotFoundError:
        data = None
    except (OSError, ValueError) as exc:
        return (f"sidecar gate: {workspace} cannot be compared with the approved policy "
                f"({getattr(exc, 'strerror', None) or exc}); the gate keeps the approved one")
    theirs = hashlib.sha256(data).hexdigest() if data is not None else None
    if theirs == state.digest:
        return None
    shown = f"sha256:{theirs}" if theirs else "missing"
    return (f"sidecar gate: {workspace} ({shown}) differs from the approved policy "
            f"({state.header}): the gate keeps the approved one; run `sidecar trust` on the "
            "host to approve it")
