"""A small rendered project (one busybox app service + the generated claude stack) for the
tests that need the real compose file: its healthcheck, its cap_add, `up --wait`.

The approved policy is a folder mounted at /run/sidecar/policy (where `sidecar up` puts it),
and a compose override holds whatever a test changes; the project name is unique.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conftest import BUSYBOX_IMAGE, TEST_LABEL, unique_name
from ruamel.yaml import YAML

# Holds the firewall's set-up (its first `ipset` call) until the test creates /gate/open.
GATED_IPSET = """#!/bin/sh
touch /gate/waiting
while [ ! -e /gate/open ]; do sleep 0.05; done
exec /usr/sbin/ipset "$@"
"""
CLAUDE_STUB = '#!/bin/sh\necho "claude-stub uid=$(id -u) args=$*"\n'


@dataclass
class MiniStack:
    """A rendered project on disk and the compose command line to drive it."""

    root: Path
    project: str
    compose: list[str]
    override: dict[str, object] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 180,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """`docker compose -p PROJECT -f compose.yaml -f override.yaml ARGS`."""
        override = self.root / "override.yaml"
        with override.open("w") as handle:
            YAML().dump(self.override, handle)
        result = subprocess.run(
            [*self.compose, "-p", self.project, "-f", str(self.root / "compose.yaml"),
             "-f", str(override), *args],
            cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def claude_service(self) -> dict[str, object]:
        """The override's entry for the claude service (created on first use)."""
        services = self.override.setdefault("services", {})
        assert isinstance(services, dict)
        entry = services.setdefault("claude", {})
        assert isinstance(entry, dict)
        return entry

    def container_id(self, service: str = "claude") -> str:
        """The id of the service's container."""
        out = self.run("ps", "-q", service, check=True).stdout.strip()
        assert out, f"no container for {service}"
        return out


def make_ministack(tmp_path: Path, image: str, compose: list[str], sidecar: list[str],
                   domains: str = "allowed.test\n") -> MiniStack:
    """Write the project, render it with `sidecar render`, approve its policy (a folder)."""
    project = unique_name("ministack")
    root = tmp_path / project
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text(
        "services:\n"
        "  app:\n"
        f"    image: {BUSYBOX_IMAGE}\n"
        "    command: [sleep, '3600']\n"
        "    init: true\n"
        f"    labels: {{{TEST_LABEL}: '1'}}\n"
        "    volumes: ['./:/srv']\n")
    (root / ".sidecar" / "bridge.yaml").write_text(
        'version: "1"\n'
        "commands:\n"
        "  hello: {container: app, exec: echo, workdir: /srv, paths: {/workspace: /srv}}\n"
        f"sidecar: {{project: {project}, image: {image}}}\n")
    done = subprocess.run([*sidecar, "render"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    policy = root / "approved"
    policy.mkdir()
    (policy / "bridge.yaml").write_text((root / ".sidecar" / "bridge.yaml").read_text())
    (policy / "allowed-domains.txt").write_text(domains)
    stub = root / "claude-stub"
    stub.write_text(CLAUDE_STUB)
    stub.chmod(0o755)
    stack = MiniStack(root, project, compose)
    mounts = [f"{policy}:/run/sidecar/policy:ro", f"{stub}:/usr/local/bin/claude:ro"]
    stack.claude_service().update({"volumes": mounts, "labels": {TEST_LABEL: "1"},
                                   "environment": {"SIDECAR_FIREWALL_GITHUB": "0"}})
    stack.override["services"]["sidecar-gate"] = {  # type: ignore[index]
        "volumes": [f"{policy}:/run/sidecar/policy:ro"], "labels": {TEST_LABEL: "1"}}
    return stack


def rendered_claude_service(stack: MiniStack) -> dict[str, object]:
    """The claude service as `sidecar render` wrote it."""
    data = YAML(typ="safe").load((stack.root / ".sidecar" / "compose.yml").read_text())
    service = data["services"]["claude"]
    assert isinstance(service, dict)
    return service
