"""What `sidecar render` gives the claude service for the firewall and readiness:
`sidecar.firewall.host_ports` and `private_networks` (schema, model, environment) and the
healthcheck."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from sidecar_gen.render import run_render
from sidecar_gen.validate.bridge import validate_text
from sidecar_gen.validate.findings import Severity

BRIDGE = """\
version: "1"
commands:
  php: {container: php, exec: php}
sidecar:
  project: demo
"""


def rendered_claude(tmp_path: Path, sidecar_extra: str) -> dict[str, Any]:
    root = tmp_path / "demo"
    (root / ".sidecar").mkdir(parents=True)
    (root / ".sidecar" / "bridge.yaml").write_text(BRIDGE + sidecar_extra)
    (root / "compose.yaml").write_text("services:\n  php:\n    image: php:8.3\n")
    run_render(root)
    data = YAML(typ="safe").load((root / ".sidecar" / "compose.yml").read_text())
    service = data["services"]["claude"]
    assert isinstance(service, dict)
    return service


def test_host_ports_reach_the_firewall_as_an_environment_variable(tmp_path: Path) -> None:
    claude = rendered_claude(tmp_path, "  firewall: {host_ports: [6379, 5432]}\n")
    assert claude["environment"]["SIDECAR_FIREWALL_HOST_PORTS"] == "5432 6379"
    assert claude["cap_add"] == ["NET_ADMIN", "NET_RAW"]


def test_no_host_ports_no_variable_and_firewall_off_none(tmp_path: Path) -> None:
    assert "SIDECAR_FIREWALL_HOST_PORTS" not in rendered_claude(tmp_path / "a", "")["environment"]
    off = rendered_claude(tmp_path / "b", "  firewall: {enabled: false, host_ports: [5432]}\n")
    assert "SIDECAR_FIREWALL_HOST_PORTS" not in off["environment"]


def test_private_networks_reach_the_firewall_as_an_environment_variable(tmp_path: Path) -> None:
    claude = rendered_claude(tmp_path, "  firewall: {private_networks: [10.1.0.0/16, "
                                       "'fd00:1::/64']}\n")
    assert claude["environment"]["SIDECAR_FIREWALL_PRIVATE_NETWORKS"] == "10.1.0.0/16 fd00:1::/64"
    assert "SIDECAR_FIREWALL_PRIVATE_NETWORKS" not in rendered_claude(tmp_path / "a", "")[
        "environment"]


@pytest.mark.parametrize("networks", ['["10.1.0.0"]', '["300.1.0.0/16"]', '["10.0.0.0/33"]',
                                      '["corp.example"]', '["fd00::/129"]', '"10.0.0.0/8"'])
def test_bad_private_networks_are_findings(networks: str) -> None:
    findings = validate_text(BRIDGE + f"  firewall: {{private_networks: {networks}}}\n",
                             "bridge.yaml")
    assert [f.rule for f in findings if f.severity is Severity.ERROR] in (
        ["schema-pattern"], ["schema-type"]), findings


def test_healthcheck_is_the_images_readiness_check(tmp_path: Path) -> None:
    # The image's sidecar-health (no Python), waiting for a start still under way; not in the
    # Dockerfile because the gate runs the same image.
    assert rendered_claude(tmp_path, "")["healthcheck"] == {
        "test": ["CMD", "/usr/local/sbin/sidecar-health", "--wait", "20"],
        "interval": "3s", "timeout": "25s", "retries": 2}


@pytest.mark.parametrize(("ports", "rule"), [
    ("[0]", "schema-range"), ("[65536]", "schema-range"), ("[5432, 5432]", "schema-unique"),
    ('["5432"]', "schema-type"), ("5432", "schema-type"),
])
def test_bad_host_ports_are_findings(ports: str, rule: str) -> None:
    findings = validate_text(BRIDGE + f"  firewall: {{host_ports: {ports}}}\n", "bridge.yaml")
    # Errors only: without a compose file next to it, the container name is a warning too.
    assert [f.rule for f in findings if f.severity is Severity.ERROR] == [rule], findings
