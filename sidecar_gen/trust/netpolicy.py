"""`sidecar net allow` / `deny`: the user changes the approved allowlist, and the running
firewall follows without a restart.

`allow` is the user acting on the host, so it approves its own change, and only that:

1. the names are checked (a bare domain: no IP, URL, port, wildcard, public suffix or shared
   platform, empty name or space; any bad one refuses them all, exit 2);
2. under the project's lock, the project is checked against its approval: anything else that
   changed since (something the agent may have written) refuses, so that `allow` never approves
   it along the way (`sidecar trust` first);
3. bridge.yaml gets the names under `sidecar.firewall.domains` (comments and layout kept,
   ruamel round-trip) and the approved allowed-domains.txt gets them as lines;
4. the project is checked again: only those two files may differ, and they must hold exactly
   what was written; then that snapshot is approved;
5. the policy volume gets the new files, the gate re-reads its policy (SIGHUP), and each
   running claude container of the project reloads its firewall as root through the Engine
   API (`sidecar firewall reload`: Claude Code keeps running);
6. the decision is appended to the project's host-side audit log (`audit.log_approval`).

`deny` does the same with the names taken out.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.firewall.allowlist import check_domain, parse_domains
from sidecar_gen.fsutil import read_text_file, write_atomic
from sidecar_gen.runtime import contract
from sidecar_gen.runtime.escape import quote
from sidecar_gen.runtime.names import CONFIG_DIR, CONFIG_NAME, DOMAINS_NAME, GATE_SERVICE, VENV
from sidecar_gen.trust.actions import Check, approve, check_project, locked
from sidecar_gen.trust.policyvolume import fill_policy

if TYPE_CHECKING:
    from docker import DockerClient

    from sidecar_gen.compose.cli import ComposeTarget

# Public suffixes and shared platforms: anyone can publish a site (and its DNS) under them.
# A short list of the common ones; `check_domain` already refuses a single label (a TLD).
SHARED = frozenset({
    "github.io", "gitlab.io", "vercel.app", "netlify.app", "herokuapp.com", "pages.dev",
    "workers.dev", "appspot.com", "web.app", "firebaseapp.com", "fly.dev", "onrender.com",
    "ngrok.io", "ngrok-free.app", "glitch.me", "repl.co", "blogspot.com", "cloudfront.net",
    "azurewebsites.net", "s3.amazonaws.com", "amazonaws.com", "googleusercontent.com",
    "surge.sh", "now.sh", "readthedocs.io", "duckdns.org", "no-ip.org", "trycloudflare.com"})
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go",
                           "gob", "mil", "nic", "ltd", "plc", "sch", "nom"})
RELOAD_ARGV = [f"{VENV}/bin/sidecar", "firewall", "reload", "--json"]


class NetPolicyError(SidecarError):
    """A refused `net allow`/`deny` (nothing was changed)."""


def name_problem(name: str) -> str | None:
    """Why `name` cannot be allowed (None when it can)."""
    if not name.strip():
        return "an empty name"
    if any(c.isspace() for c in name):
        return "a name with spaces"
    lowered = name.lower().rstrip(".")
    reason = check_domain(lowered)
    if reason:
        return reason
    labels = lowered.split(".")
    if lowered in SHARED:
        return "a shared platform's domain: anyone can publish under it; allow the tenant"
    if len(labels) == 2 and labels[0] in _SECOND_LEVEL and len(labels[1]) == 2:
        return "a public suffix: anyone can register a domain under it"
    return None


def check_names(names: Sequence[str]) -> list[str]:
    """The names, lowercased, each once; NetPolicyError (exit 2) naming the first bad one."""
    if not names:
        raise NetPolicyError("name at least one host", exit_code=ExitCode.USAGE)
    out: list[str] = []
    for name in names:
        problem = name_problem(name)
        if problem:
            raise NetPolicyError(f"{quote(name, 200)}: {problem}", exit_code=ExitCode.USAGE)
        clean = name.lower().rstrip(".")
        if clean not in out:
            out.append(clean)
    return out


@dataclass
class NetChange:
    """What `net allow`/`deny` did."""

    decision: str  # allow | deny
    names: list[str]
    changed: list[str] = field(default_factory=list)  # the names that were not already so
    record: str = ""
    reloaded: list[str] = field(default_factory=list)  # one entry per container
    failed: list[str] = field(default_factory=list)


def _edit_bridge(text: str, names: list[str], allow: bool) -> str:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from sidecar_gen.yamlio import make_yaml

    yaml = make_yaml()
    data = yaml.load(text)
    if not isinstance(data, dict):
        raise NetPolicyError("bridge.yaml is not a mapping")
    side = data.setdefault("sidecar", CommentedMap())
    fw = side.setdefault("firewall", CommentedMap()) if isinstance(side, dict) else None
    if not isinstance(fw, dict):
        raise NetPolicyError("bridge.yaml: sidecar.firewall is not a mapping")
    domains = fw.get("domains")
    if domains is None:
        domains = fw["domains"] = CommentedSeq()
    if not isinstance(domains, list):
        raise NetPolicyError("bridge.yaml: sidecar.firewall.domains is not a list")
    for name in names:
        present = [i for i, d in enumerate(domains) if str(d).lower().rstrip(".") == name]
        if allow and not present:
            domains.append(name)
        elif not allow:
            for index in reversed(present):
                del domains[index]
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _edit_domains(text: str, names: list[str], allow: bool) -> tuple[str, list[str]]:
    current, _ = parse_domains(text)
    lines = text.splitlines()
    if allow:
        changed = [n for n in names if n not in current]
        lines += changed
    else:
        changed = [n for n in names if n in current]
        lines = [line for line in lines
                 if line.split("#", 1)[0].strip().lower().rstrip(".") not in changed]
    return "\n".join(lines) + "\n", changed


def _reload(client: DockerClient, project: str) -> tuple[list[str], list[str]]:
    done: list[str] = []
    failed: list[str] = []
    for role in (contract.ROLE_GATE, contract.ROLE_CLAUDE):
        for container in client.containers.list(filters={"label": [
                f"{contract.PROJECT_LABEL}={project}", f"{contract.ROLE_LABEL}={role}"]}):
            if role == contract.ROLE_GATE:
                container.kill(signal="SIGHUP")
                continue
            result = container.exec_run(RELOAD_ARGV, user="root")
            name = str(container.name)
            output = result.output if isinstance(result.output, bytes) else b""
            if result.exit_code == 0:
                done.append(name)
            else:
                text = output.decode("utf-8", "replace").strip().splitlines()
                failed.append(f"{name}: {quote(text[-1] if text else '?', 300)}")
    return done, failed


def change_allowlist(target: ComposeTarget, names: Sequence[str], *, allow: bool,
                     connect: Callable[[], DockerClient]) -> NetChange:
    """Allow (or deny) `names` in the approved allowlist and reload the running firewall
    (`connect` is called once the project is known to match its approval)."""
    from sidecar_gen.audit.store import log_approval

    clean = check_names(names)
    decision = "allow" if allow else "deny"
    result = NetChange(decision, clean)
    bridge_path = target.directory / CONFIG_DIR / CONFIG_NAME
    domains_path = target.directory / CONFIG_DIR / DOMAINS_NAME
    with locked(target) as store:
        before = check_project(target, store, render_notes=False)
        if before.comparison.first_use:
            raise NetPolicyError("the project has no approval yet: run `sidecar up` (or "
                                 "`sidecar trust`) first", exit_code=ExitCode.FINDINGS)
        if before.comparison.changed:
            raise NetPolicyError(
                f"changed since you approved it: {', '.join(before.comparison.names())}; "
                "review it with `sidecar trust` first (net allow approves only its own change)",
                exit_code=ExitCode.FINDINGS)
        client = connect()  # before any edit: no engine, nothing changed
        old_bridge, old_domains = read_text_file(bridge_path), read_text_file(domains_path)
        bridge_text = _edit_bridge(old_bridge, clean, allow)
        domains_text, result.changed = _edit_domains(old_domains, clean, allow)
        write_atomic(bridge_path, bridge_text)
        write_atomic(domains_path, domains_text)
        try:
            after = check_project(target, store, render_notes=False)
            _only_ours(after, bridge_text, domains_text)
        except BaseException:
            # Not approved: put the approved files back, so nothing is left half-done.
            write_atomic(bridge_path, old_bridge)
            write_atomic(domains_path, old_domains)
            raise
        result.record = str(approve(after))
        approval = store.load(target.directory)
        if approval is None:
            raise NetPolicyError("the approval record disappeared")
        model = after.snapshot.resolved
        fill_policy(client, model.doc, approval.policy, after.snapshot.compose_version,
                    GATE_SERVICE)
        result.reloaded, result.failed = _reload(client, model.name)
        log_approval(store.directory(target.directory), decision, clean, result.changed,
                     result.reloaded)
    return result


def _only_ours(check: Check, bridge_text: str, domains_text: str) -> None:
    comparison = check.comparison
    extra = [name for name in comparison.policy if name not in (CONFIG_NAME, DOMAINS_NAME)]
    extra += [name for name in comparison.names()
              if name not in (f"{CONFIG_DIR}/{CONFIG_NAME}", f"{CONFIG_DIR}/{DOMAINS_NAME}")]
    if comparison.model_changed or comparison.git or extra:
        raise NetPolicyError("something else changed while the allowlist was edited: review "
                             "it with `sidecar trust`", exit_code=ExitCode.FINDINGS)
    policy = check.snapshot.policy
    if policy.get(CONFIG_NAME) != bridge_text or policy.get(DOMAINS_NAME) != domains_text:
        raise NetPolicyError("bridge.yaml or allowed-domains.txt changed while it was "
                             "edited: try again", exit_code=ExitCode.FINDINGS)


def to_json(change: NetChange) -> str:
    """JSON form of a change."""
    return json.dumps(change.__dict__)
