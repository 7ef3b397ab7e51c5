"""Doctor's checks of the credential broker: it runs and answers, its upstream answers, and no
real secret is readable by the agent.

The broker is asked from the claude container (as root, by absolute path: where the agent
reaches it from), never by an exec in the broker or in a routed target. The search for the
secret runs as user claude (`secretprobe`: only what the agent can read), with keyed digests:
the secret never enters the container and is never printed. With `sidecar.broker: false` the
credential is in the claude container by design: doctor warns instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import TYPE_CHECKING

from sidecar_gen.doctor import DoctorReport, Status
from sidecar_gen.doctor.host import HostContext
from sidecar_gen.doctor.stack import (
    OUT_OF_TIME,
    PYTHON,
    _exec,
    _said,
    _service_container,
    _state,
)
from sidecar_gen.resources import program_text
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.escape import quote
from sidecar_gen.runtime.names import (
    AGENT_HOME,
    AGENT_USER,
    BROKER_SERVICE,
    BROKER_URL,
    CLAUDE_CONFIG,
)

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

SECRET_PROBE = "sidecar_gen.doctor.secretprobe"  # noqa: S105 - a module name
# Where the agent's user could find a secret (the config volume is under its home).
SEARCHED = (AGENT_HOME, CLAUDE_CONFIG, "/run", "/tmp")
WORD = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~+/")
OPT_OUT = "a real credential is readable by the agent"
NAMES = ("broker", "broker upstream", "secret")


def _probe(report: DoctorReport, claude: Container, argv: list[str],
           user: str) -> tuple[dict[str, object] | None, str]:
    ran = _exec(report, claude, [PYTHON, "-I", "-c", program_text(SECRET_PROBE), *argv], user)
    try:
        found = json.loads(ran.out)
    except ValueError:
        return None, _said(ran)
    return (found, "") if isinstance(found, dict) else (None, _said(ran))


def _host_secrets(report: DoctorReport) -> list[str]:
    """The real secrets this host would give the broker (`sidecar up`'s rule), values only."""
    from sidecar_gen.auth import CredentialStore, resolve
    from sidecar_gen.trust.record import state_root

    env = report.target.environ()
    resolved = resolve(CredentialStore(state_root(env)), env)
    sources = [resolved.anthropic, resolved.github, *resolved.overridden]
    return sorted({s.value for s in sources if s is not None})


def _broker(report: DoctorReport, claude: Container) -> bool:
    """Reachable and healthy from claude; the upstream answers. False: stop here."""
    found, said = _probe(report, claude, ["broker", BROKER_URL], user="root")
    if found is None or "error" in found or found.get("health_status") != 200:
        why = said or quote(str((found or {}).get("error") or found), 200)
        report.add("broker", Status.FAIL, f"{BROKER_URL} does not answer from claude ({why})",
                   f"`docker compose logs {BROKER_SERVICE}`, then `sidecar up`")
        report.add("broker upstream", Status.SKIP, "needs the broker (see broker)")
        return False
    kinds = found.get("credentials")
    kinds = [str(k) for k in kinds] if isinstance(kinds, list) else []
    anthropic = [k for k in kinds if k in ("api-key", "oauth-token")]
    if anthropic:
        report.add("broker", Status.OK, f"{BROKER_URL} answers from claude; it holds: "
                   f"{', '.join(kinds)}")
    else:
        report.add("broker", Status.FAIL, f"{BROKER_URL} answers but holds no Anthropic "
                   "credential: Claude Code cannot reach the model",
                   "`sidecar auth set --api-key` (or --oauth-token, or ANTHROPIC_API_KEY in "
                   "the environment), then `sidecar up` (a session: `sidecar session up NAME`)")
    status = found.get("upstream_status")
    if status in (502, 504) or not isinstance(status, int):
        report.add("broker upstream", Status.SKIP, f"not checked: the upstream did not answer "
                   f"the broker (status {quote(str(status), 20)}; offline?)")
    else:
        report.add("broker upstream", Status.OK, f"the upstream answers the broker (HEAD "
                   f"/api/hello: {status})")
    return True


def _secret(report: DoctorReport, claude: Container) -> None:
    values = _host_secrets(report)
    if not values:
        report.add("secret", Status.SKIP, "no credential on this host to look for (`sidecar "
                   "auth status`)")
        return
    key = secrets.token_bytes(32)
    missing = []
    for length in sorted({len(v) for v in values}):
        group = [v for v in values if len(v) == length]
        digests = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in group]
        alphabet = "words" if all(set(v) <= WORD for v in group) else "visible"
        found, said = _probe(report, claude, ["search", alphabet, key.hex(), str(length),
                                              *digests, "--", *SEARCHED], user=AGENT_USER)
        if found is None:
            report.add("secret", Status.FAIL, f"cannot search the claude container ({said})",
                       "`docker compose logs claude`")
            return
        paths = found.get("found")
        if isinstance(paths, list) and paths:
            report.add("secret", Status.FAIL, f"a real credential is readable by the agent in "
                       f"{', '.join(quote(str(p), 120) for p in paths[:5])}",
                       "remove it there, rotate the credential, then `sidecar up`")
            return
        if found.get("truncated"):
            missing.append(f"searched {found.get('bytes')} bytes only")
    where = ", ".join(("process environments", *SEARCHED))
    report.add("secret", Status.WARN if missing else Status.OK,
               f"no credential of this host is readable as user {AGENT_USER} ({where})"
               + (f"; {'; '.join(missing)}" if missing else ""))


def run_broker_checks(report: DoctorReport, context: HostContext) -> None:
    """The broker's container, its answer and upstream, the secret search (or the opt-out's
    warning). After the stack checks (whose engine client and project it reuses)."""
    bridge = context.bridge
    if bridge is not None and not bridge.stack.broker.enabled:
        report.add("broker", Status.WARN, f"sidecar.broker is false: {OPT_OUT} (the API key "
                   "in its environment, a login in its config volume)",
                   "remove `broker: false` from bridge.yaml, `sidecar auth set`, `sidecar "
                   "render`, `sidecar trust`, `sidecar up`")
        return
    client = context.client
    if client is None:
        for name in NAMES:
            report.add(name, Status.SKIP, "needs the engine (see engine)")
        return
    if report.deadline.expired:
        for name in NAMES:
            report.add(name, Status.SKIP, OUT_OF_TIME)
        return
    project = report.project
    claude = _service_container(client, project, contract.ROLE_CLAUDE)
    if claude is not None and claude.status != "running":
        claude = None
    _checks(report, client, project, claude)


def _checks(report: DoctorReport, client: DockerClient, project: str,
            claude: Container | None) -> None:
    container = _service_container(client, project, contract.ROLE_BROKER)
    if container is None or container.status != "running" or "unhealthy" in _state(container):
        state = "no container" if container is None else f"{container.name} is " \
            f"{_state(container)}"
        report.add("broker", Status.FAIL, f"{BROKER_SERVICE}: {state}",
                   f"`docker compose logs {BROKER_SERVICE}`, then `sidecar up`")
        for name in NAMES[1:]:
            report.add(name, Status.SKIP, "needs a running broker (see broker)")
        return
    if claude is None:
        for name in NAMES:
            report.add(name, Status.SKIP, "needs a running claude container (see claude)")
        return
    if _broker(report, claude):
        _secret(report, claude)
    else:
        report.add("secret", Status.SKIP, "needs the broker (see broker)")
