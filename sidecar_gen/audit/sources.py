"""Reading each audit source of a project's running stack through the Engine API.

- the egress record: the claude containers' `/run/sidecar/egress` (an archive read, no exec);
- the gate's decision log: the gate container's log (its stderr), as `docker logs` has it;
- a broker record file (`sidecar broker --log`).

Every line goes through `envelope.envelope`; a line that is not a JSON object with a time is
skipped, so whatever else a log holds never becomes an event.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar_gen.audit.envelope import envelope
from sidecar_gen.firewall.events import BLOCKED_FILE, EGRESS_DIR, RECORD_FILE, RECORD_OLD
from sidecar_gen.runtime import contract

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

SESSION_LABEL = "dev.claude-sidecar.session"  # session.model's, read here without importing it
MAX_ARCHIVE = 64 * 1024 * 1024


def containers(client: DockerClient, project: str, role: str) -> list[Container]:
    """The project's containers of one role (running first)."""
    found = client.containers.list(all=True, filters={"label": [
        f"{contract.PROJECT_LABEL}={project}", f"{contract.ROLE_LABEL}={role}"]})
    return sorted(found, key=lambda c: c.status != "running")


def session_of(container: Container) -> str | None:
    """The session a container belongs to (None: the project itself)."""
    labels = container.labels or {}
    value = labels.get(SESSION_LABEL)
    return str(value) if value else None


def egress_files(container: Container) -> dict[str, bytes]:
    """The files of the container's egress folder (empty when it has none)."""
    import docker

    try:
        stream, _ = container.get_archive(EGRESS_DIR)
        data = b""
        for chunk in stream:
            data += chunk
            if len(data) > MAX_ARCHIVE:
                break
    except docker.errors.APIError:
        return {}
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    out["/run/sidecar/" + member.name] = handle.read()
    return out


def _lines(data: bytes) -> Iterable[dict[str, Any]]:
    for raw in data.decode("utf-8", "replace").splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):
            yield doc


def egress_events(container: Container) -> list[dict[str, Any]]:
    """The container's egress record, as events of its session."""
    files = egress_files(container)
    session = session_of(container)
    out = []
    for name in (RECORD_OLD, RECORD_FILE):
        for doc in _lines(files.get(name, b"")):
            event = envelope(doc, session, "egress")
            if event is not None:
                out.append(event)
    return out


def blocked_text(container: Container) -> str:
    """The agent's short reasons, as it reads them."""
    return egress_files(container).get(BLOCKED_FILE, b"").decode("utf-8", "replace")


_GATE_KEYS = ("peer", "method", "path", "target", "status", "policy", "exec", "exec_id", "size",
              "count", "since", "cut", "stream")


def gate_event(doc: dict[str, Any], session: str | None) -> dict[str, Any] | None:
    """One decision-log line as an event."""
    if "exec" in doc:
        action = "exec"
    elif "stream" in doc:
        action = "exec-end"
    else:
        action = "request"
    details = {key: doc[key] for key in _GATE_KEYS if key in doc}
    return envelope({"time": doc.get("time"), "action": action, "decision": doc.get("decision"),
                     "reason": doc.get("reason"), "details": details}, session, "gate")


def gate_events(container: Container, since: datetime | None = None) -> list[dict[str, Any]]:
    """The gate container's decision log (its container log) as events."""
    import docker

    try:
        data = container.logs(stdout=True, stderr=True, since=since) if since else \
            container.logs(stdout=True, stderr=True)
    except docker.errors.APIError:
        return []
    session = session_of(container)
    out = []
    for doc in _lines(data if isinstance(data, bytes) else b""):
        event = gate_event(doc, session)
        if event is not None:
            out.append(event)
    return out


def broker_events(path: Path) -> list[dict[str, Any]]:
    """A broker record file (`sidecar broker --log`) as events."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    out = []
    for doc in _lines(data):
        details = {key: doc[key] for key in ("peer", "method", "path", "status", "model",
                                             "duration_ms", "input_tokens", "output_tokens")
                   if key in doc}
        event = envelope({"time": doc.get("time"), "action": "request",
                          "decision": doc.get("decision"), "reason": doc.get("reason"),
                          "details": details}, None, "broker")
        if event is not None:
            out.append(event)
    return out
