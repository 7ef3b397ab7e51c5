"""The session's compose model and policy, from models in compose's canonical form (what
`docker compose config --format json` prints; the e2e tests feed it the real thing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sidecar_gen.model import bridge_from_plain
from sidecar_gen.runtime.contract import ROLE_LABEL
from sidecar_gen.session.model import (
    POLICY_BRIDGE,
    POLICY_TARGET,
    SESSION_LABEL,
    Names,
    derive_policy,
    plan_model,
    route_targets,
)
from sidecar_gen.session.store import SessionError
from sidecar_gen.trust import secretvolume
from sidecar_gen.yamlio import load_text

SESSION = "shop-fix"
POLICY_DIR = "/state/sessions/shop-0123/fix/policy"


def canonical() -> dict[str, Any]:
    """A resolved model of project `shop`, as `docker compose -p shop-fix config` gives it."""
    return {
        "name": SESSION,
        "services": {
            "claude": {
                "image": "claude-sidecar", "labels": {ROLE_LABEL: "claude"},
                "depends_on": {"sidecar-gate": {"condition": "service_started",
                                                "required": True}},
                "environment": {"PUID": "1000", "ANTHROPIC_API_KEY": None,
                                "SIDECAR_CONFIG_DIR": "/workspace/.sidecar"},
                "networks": {"default": None},
                "volumes": [
                    {"type": "bind", "source": "/wt/fix", "target": "/workspace"},
                    {"type": "bind", "source": "/wt/fix/.sidecar",
                     "target": "/workspace/.sidecar", "read_only": True},
                    {"type": "volume", "source": "claude-config",
                     "target": "/home/claude/.claude", "volume": {}},
                ],
            },
            "sidecar-gate": {
                "image": "claude-sidecar", "labels": {ROLE_LABEL: "gate"},
                "entrypoint": ["sidecar", "proxy", "--listen=tcp://0.0.0.0:2375",
                               "--config=/etc/sidecar/bridge.yaml"],
                "networks": {"default": None},
                "volumes": [
                    {"type": "bind", "source": "/var/run/docker.sock",
                     "target": "/var/run/docker.sock", "read_only": True},
                    {"type": "bind", "source": "/wt/fix/.sidecar", "target": "/etc/sidecar",
                     "read_only": True},
                ],
            },
            "web": {
                "image": "nginx", "container_name": "shop-web",
                "depends_on": {"php": {"condition": "service_started", "required": True}},
                "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80,
                           "published": "8080", "protocol": "tcp"}],
                "networks": {"default": None, "front": {"ipv4_address": "172.30.0.5"}},
                "profiles": ["web"],
            },
            "php": {
                "image": "php", "networks": {"default": None},
                "volumes": [{"type": "bind", "source": "/wt/fix", "target": "/var/www"},
                            {"type": "volume", "source": "cache", "target": "/cache",
                             "volume": {}}],
                "links": ["db:database"],
            },
            "db": {"image": "mariadb", "networks": {"default": None},
                   "volumes": [{"type": "volume", "source": "dbdata",
                                "target": "/var/lib/mysql", "volume": {}}]},
            "worker": {"image": "php", "networks": {"default": None},
                       "volumes": [{"type": "volume", "source": "unused", "target": "/u",
                                    "volume": {}}]},
        },
        "networks": {
            "default": {"name": f"{SESSION}_default", "ipam": {}, "external": False},
            "front": {"name": "proxy", "external": True},
        },
        "volumes": {
            "claude-config": {"name": f"{SESSION}_claude-config", "external": False},
            "dbdata": {"name": "shop-db-data", "external": False},
            "cache": {"name": "cache", "external": True},
            "unused": {"name": f"{SESSION}_unused", "external": False},
        },
    }


def plan(model: dict[str, Any] | None = None, needed: tuple[str, ...] = ("web",)) -> Any:
    return plan_model(model or canonical(), session=SESSION, name="fix", needed=needed,
                      policy_dir=POLICY_DIR)


def test_keeps_claude_gate_the_routed_services_and_what_they_need() -> None:
    result = plan()
    # web -> php (depends_on) -> db (links); worker is nobody's dependency.
    assert result.services == ("claude", "db", "php", "sidecar-gate", "web")
    assert set(result.model["services"]) == set(result.services)
    assert (result.claude, result.gate) == ("claude", "sidecar-gate")
    assert result.model["name"] == SESSION


@pytest.mark.parametrize(("extra", "reached"), [
    ({"network_mode": "service:db"}, "db"),
    ({"volumes_from": ["db:ro"]}, "db"),
    ({"links": ["db"]}, "db"),
    ({"depends_on": {"db": {"condition": "service_healthy"}}}, "db"),
])
def test_every_kind_of_dependency_is_followed(extra: dict[str, Any], reached: str) -> None:
    model = canonical()
    model["services"]["worker"].update(extra)
    assert reached in plan(model, needed=("worker",)).services


def test_nothing_collides_with_the_source_project() -> None:
    result = plan()
    web = result.model["services"]["web"]
    assert "container_name" not in web
    assert "profiles" not in web
    # Published on a free host port, on the same address, same target.
    assert web["ports"] == [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80,
                             "protocol": "tcp"}]
    assert web["networks"]["front"] == {}
    # Every named volume and network is the session's own, whatever the source called it.
    assert result.model["volumes"] == {
        "claude-config": {"name": f"{SESSION}_claude-config"},
        "dbdata": {"name": f"{SESSION}_dbdata"},
        "cache": {"name": f"{SESSION}_cache"},
    }
    assert result.volumes == {k: f"{SESSION}_{k}" for k in ("claude-config", "dbdata", "cache")}
    assert result.model["networks"] == {"default": {"name": f"{SESSION}_default"},
                                        "front": {"name": f"{SESSION}_front"}}
    notes = "\n".join(result.notes)
    for expected in ("web: port 80 is published on a free host port",
                     "volume dbdata: the session has its own local volume shop-fix_dbdata "
                     "(not shop-db-data)",
                     "volume cache: the session has its own local volume shop-fix_cache "
                     "(not cache)",
                     "network front: the session has its own network shop-fix_front",
                     "web: fixed ipv4_address on network front dropped"):
        assert expected in notes
    assert "claude-config" not in notes  # already the session's own: nothing to say


def test_every_service_is_labelled_with_the_session() -> None:
    result = plan()
    for spec in result.model["services"].values():
        assert spec["labels"][SESSION_LABEL] == "fix"
    assert result.model["services"]["claude"]["labels"][ROLE_LABEL] == "claude"


def test_the_gate_and_claude_read_the_policy_from_the_state_folder() -> None:
    result = plan()
    gate = result.model["services"]["sidecar-gate"]
    assert gate["entrypoint"][-1] == f"--config={POLICY_BRIDGE}"
    policy = {"type": "bind", "source": POLICY_DIR, "target": POLICY_TARGET, "read_only": True}
    assert policy in gate["volumes"]
    # The copy the gate compares with the policy it runs is the session's own, not the
    # worktree's (which the agent can write through a routed command).
    etc = next(m for m in gate["volumes"] if m["target"] == "/etc/sidecar")
    assert (etc["source"], etc["read_only"]) == (POLICY_DIR, True)
    claude = result.model["services"]["claude"]
    assert policy in claude["volumes"]
    assert claude["environment"]["BRIDGE_CONFIG"] == POLICY_BRIDGE
    assert claude["environment"]["SIDECAR_CONFIG_DIR"] == POLICY_TARGET
    assert claude["environment"]["ANTHROPIC_API_KEY"] is None  # still passed at start
    assert not any(m.get("source", "").startswith("/state") and not m.get("read_only")
                   for spec in result.model["services"].values() for m in spec.get("volumes", []))


def test_a_policy_volume_and_the_two_argument_config_form_are_replaced() -> None:
    model = canonical()
    gate = model["services"]["sidecar-gate"]
    gate["entrypoint"] = ["sidecar", "proxy", "--config", "/run/sidecar/policy/bridge.yaml"]
    for spec in (gate, model["services"]["claude"]):
        spec["volumes"].append({"type": "volume", "source": "sidecar-policy",
                                "target": POLICY_TARGET, "read_only": True, "volume": {}})
    model["volumes"]["sidecar-policy"] = {"name": f"{SESSION}_sidecar-policy"}
    result = plan(model)
    gate_out = result.model["services"]["sidecar-gate"]
    assert gate_out["entrypoint"] == ["sidecar", "proxy", f"--config={POLICY_BRIDGE}"]
    targets = [m["target"] for m in gate_out["volumes"]]
    assert targets.count(POLICY_TARGET) == 1
    assert "sidecar-policy" not in result.model["volumes"]


def test_input_model_is_not_changed() -> None:
    model = canonical()
    before = copy.deepcopy(model)
    plan(model)
    assert model == before


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["services"]["web"].update(network_mode="host"),
     "service web uses network_mode: host"),
    (lambda m: m["services"]["claude"]["labels"].clear(), "has no Claude stack"),
    (lambda m: m["services"]["sidecar-gate"].update(entrypoint=["sidecar", "proxy"]),
     "has no --config argument"),
])
def test_models_a_session_cannot_copy_are_refused(change: Any, message: str) -> None:
    model = canonical()
    change(model)
    with pytest.raises(SessionError, match=message):
        plan(model)


SOURCE = {"name": "shop", "services": {
    "php": {"image": "php"}, "db": {"image": "mariadb"}, "web": {"container_name": "shop-web"},
    "my-svc": {"image": "x"}}}


@pytest.mark.parametrize(("literal", "expected"), [
    ("shop-web", ("web", 1)),
    ("shop-php-1", ("php", 1)),
    ("shop_db_2", ("db", 2)),
    ("shop-my-svc-3", ("my-svc", 3)),
    ("shop-nope-1", None),
    ("other-php-1", None),
    ("shop-php-x", None),
    ("php", None),
])
def test_literal_names_of_the_source_project(literal: str, expected: Any) -> None:
    assert Names.of("shop", SOURCE).service_of(literal) == expected


BRIDGE = """\
# my routes
version: "1"
containers:
  php: shop-php-1      # the app
  data: shop-db-1
  far: elsewhere-1
commands:
  php: {container: php, exec: php}
  mysql: {container: data, exec: mysql}
  web: {container: shop-web, exec: nginx}
  npm: {container: node, exec: npm}
  far: {container: far, exec: x}
default_container: shop-php-1
sidecar:
  project: shop
  image: claude-sidecar
"""


def test_policy_points_every_source_container_at_the_sessions() -> None:
    text = derive_policy(BRIDGE, "/wt/.sidecar/bridge.yaml", names=Names.of("shop", SOURCE),
                         project=SESSION, services=["php", "db", "web", "node"])
    loaded = load_text(text, "derived")
    doc = loaded.plain
    assert doc["containers"] == {"php": f"{SESSION}-php-1", "data": f"{SESSION}-db-1",
                                 "far": "elsewhere-1"}
    assert {k: v["container"] for k, v in doc["commands"].items()} == {
        "php": "php", "mysql": "data", "web": "web", "npm": "node", "far": "far"}
    assert doc["default_container"] == "php"
    assert doc["sidecar"] == {"project": SESSION, "image": "claude-sidecar"}
    assert "# my routes" in text and "# the app" in text
    assert text.startswith("# The policy of session compose project shop-fix")


def test_policy_without_a_sidecar_section_gets_the_project() -> None:
    text = derive_policy('version: "1"\ncommands:\n  php: {container: php, exec: php}\n',
                         "b.yaml", names=Names.of("shop", SOURCE), project=SESSION,
                         services=["php"])
    assert load_text(text, "derived").plain["sidecar"] == {"project": SESSION}


def test_route_targets_follow_the_dispatchers_resolution() -> None:
    bridge = bridge_from_plain(load_text(BRIDGE, "b").plain)
    model = {"services": {name: {} for name in ("php", "db", "web", "node", "claude")}}
    targets = route_targets(bridge, model, Names.of("shop", SOURCE, model))
    assert targets.services == {"php", "db", "web", "node"}
    assert targets.outside == ("elsewhere-1",)


def test_the_worktrees_git_file_is_read_only_wherever_it_shows() -> None:
    model = canonical()
    model["services"]["db"]["volumes"].append({"type": "bind", "source": "/wt",
                                               "target": "/all"})
    result = plan_model(model, session=SESSION, name="fix", needed=("web",),
                        policy_dir=POLICY_DIR, git_file="/wt/fix/.git",
                        git_common_dir="/repo/.git")
    services = result.model["services"]

    def protected(service: str) -> list[str]:
        return [m["target"] for m in services[service].get("volumes", [])
                if m.get("source") == "/wt/fix/.git" and m.get("read_only")]

    assert protected("claude") == ["/workspace/.git"]
    assert protected("php") == ["/var/www/.git"]
    assert protected("db") == ["/all/fix/.git"]
    assert protected("web") == [] and protected("sidecar-gate") == []
    common = {"type": "bind", "source": "/repo/.git", "target": "/repo/.git",
              "read_only": True}
    assert common in services["claude"]["volumes"]
    assert all(common not in spec.get("volumes", []) for name, spec in services.items()
               if name != "claude")


def with_broker(model: dict[str, Any]) -> dict[str, Any]:
    """`model` with the rendered broker and its secrets volume."""
    # As rendered: claude depends on the broker (that is what keeps it in a session).
    model["services"]["claude"]["depends_on"]["sidecar-broker"] = {
        "condition": "service_healthy", "required": True}
    model["services"]["sidecar-broker"] = {
        "image": "claude-sidecar", "labels": {ROLE_LABEL: "broker"},
        "networks": {"default": None},
        "volumes": [{"type": "volume", "source": "sidecar-secrets",
                     "target": "/run/sidecar/broker-secrets", "read_only": True,
                     "volume": {}}]}
    model["volumes"]["sidecar-secrets"] = {"name": "shop_sidecar-secrets", "external": False}
    return model


def test_the_session_has_its_own_broker_and_secrets_volume() -> None:
    """The credential goes into the session's own volume (`secretvolume.volume_name` of the
    planned model), never the project's; the plan passes the check `up` makes."""
    result = plan(with_broker(canonical()))
    assert "sidecar-broker" in result.services
    assert secretvolume.volume_name(result.model) == f"{SESSION}_sidecar-secrets"
    assert secretvolume.design_problems(result.model) == []


def test_a_service_mounting_the_secrets_volume_stays_visible_to_the_check() -> None:
    """A routed service that mounts the broker's volume keeps that mount in the session's
    plan, so the check before the hand-over (`session.commands._hand_secret`) refuses it."""
    model = with_broker(canonical())
    model["services"]["php"]["volumes"].append(
        {"type": "volume", "source": "sidecar-secrets", "target": "/s", "volume": {}})
    problems = secretvolume.design_problems(plan(model).model)
    assert problems == ["service php mounts `sidecar-secrets` (only the broker may: it holds "
                        "the real credential)"]
