"""The Claude image on a real engine, offline: contract, wrapper, entrypoint steps."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from image.conftest import wait_for_log

NO_FIREWALL = {"SIDECAR_FIREWALL": "0"}
REPO = Path(__file__).resolve().parents[2]


def test_image_contract(run_claude: Callable[..., Any]) -> None:
    script = r"""
set -e
id claude
printf 'home=%s\n' "$(getent passwd claude | cut -d: -f6)"
printf 'path=%s\n' "$PATH"
printf 'claude=%s\n' "$(command -v claude)"
printf 'config=%s\n' "$CLAUDE_CONFIG_DIR"
printf 'docker_host=%s\n' "$DOCKER_HOST"
for tool in bash git curl python3 iptables ip6tables iptables-restore ipset ip dnsmasq ps \
            runuser tini sidecar; do
    command -v "$tool" >/dev/null || echo "missing $tool"
done
sidecar --version
test -e /var/run/docker.sock && echo "docker socket present" || true
stat -c 'configdir=%U:%G:%a' /home/claude/.claude
stat -c 'wrappers=%U:%a' /opt/sidecar/wrappers
stat -c 'entrypoint=%U:%a' /usr/local/sbin/sidecar-entrypoint
stat -c 'health=%U:%a' /usr/local/sbin/sidecar-health
stat -c 'state=%U:%a' /run/sidecar
"""
    ran = run_claude(["bash", "-c", script], user="root", entrypoint=[],
                     environment=dict(NO_FIREWALL))
    assert ran.code == 0, ran
    assert "uid=1000(claude) gid=1000(claude)" in ran.out
    lines = dict(line.split("=", 1) for line in ran.out.splitlines() if "=" in line
                 and not line.startswith("uid"))
    assert lines["home"] == "/home/claude"
    assert lines["path"].split(":")[:2] == ["/opt/sidecar/wrappers", "/usr/local/sidecar/bin"]
    assert lines["claude"] == "/usr/local/sidecar/bin/claude"
    assert lines["config"] == "/home/claude/.claude"
    assert lines["configdir"] == "claude:claude:700"
    assert lines["wrappers"] == "root:755"
    assert lines["entrypoint"] == "root:755"
    assert lines["health"] == "root:755"
    assert lines["state"] == "root:755"  # the readiness marker's folder: root's alone
    assert "missing" not in ran.out
    assert "docker socket present" not in ran.out
    assert "sidecar 0." in ran.out


def test_claude_none_install_explains(run_claude: Callable[..., Any]) -> None:
    ran = run_claude(["claude", "--version"], environment=dict(NO_FIREWALL))
    assert ran.code == 127
    assert "not installed in this image (built with CLAUDE_INSTALL=none)" in ran.err


@pytest.mark.parametrize("yolo", ["1", ""])
def test_wrapper_drops_to_claude_and_adds_yolo(run_claude: Callable[..., Any], tmp_path: Path,
                                               yolo: str) -> None:
    # A stand-in for the real binary (absent with CLAUDE_INSTALL=none) that reports who runs it.
    stub = tmp_path / "claude"
    stub.write_text('#!/bin/sh\necho "uid=$(id -u) home=$HOME path=$PATH args=$*"\n')
    stub.chmod(0o755)
    container = run_claude(detach=True, environment={**NO_FIREWALL, "CLAUDE_YOLO": yolo},
                           volumes={str(stub): {"bind": "/usr/local/bin/claude", "mode": "ro"}})
    # As `docker compose exec claude claude` runs it: as root, right after the start (the
    # wrapper waits for the entrypoint).
    result = container.exec_run(["claude", "--print", "hi"], user="root")
    out = result.output.decode()
    assert result.exit_code == 0, out
    assert "uid=1000 home=/home/claude path=/opt/sidecar/wrappers:" in out
    if yolo:
        assert "args=--dangerously-skip-permissions --print hi" in out
    else:
        assert "args=--print hi" in out
        assert "dangerously" not in out


def test_command_runs_as_claude_in_the_workspace(run_claude: Callable[..., Any]) -> None:
    ran = run_claude(["sh", "-c", "id -un; pwd; echo $HOME"], environment=dict(NO_FIREWALL))
    assert ran.code == 0, ran
    assert ran.out.split() == ["claude", "/workspace", "/home/claude"]
    assert "firewall disabled by bridge.yaml" in ran.err


def test_exit_code_of_the_command_is_kept(run_claude: Callable[..., Any]) -> None:
    ran = run_claude(["sh", "-c", "exit 7"], environment=dict(NO_FIREWALL))
    assert ran.code == 7


def test_no_command_stays_up_and_stops_on_term(run_claude: Callable[..., Any]) -> None:
    container = run_claude(detach=True, environment=dict(NO_FIREWALL))
    wait_for_log(container, "ready (uid 1000, gid 1000)")
    container.reload()
    assert container.status == "running"
    exec_result = container.exec_run(["claude", "--version"])
    assert exec_result.exit_code == 127  # the wrapper answered: CLAUDE_INSTALL=none
    container.stop(timeout=30)
    # 143 = terminated by SIGTERM (forwarded by tini); 137 would mean the engine had to SIGKILL.
    assert container.wait(timeout=30)["StatusCode"] == 143


@pytest.mark.parametrize(("puid", "pgid"), [(1234, 1234), (1235, 100), (501, 20)])
def test_puid_pgid_remap(run_claude: Callable[..., Any], tmp_path: Path, puid: int,
                         pgid: int) -> None:
    # pgid 100 is the base image's "users" group, 20 its "dialout" (macOS's "staff"): groups
    # that own nothing and give nothing, so claude joins them instead of renumbering.
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    ran = run_claude(["sh", "-c", "touch /workspace/made-by-claude && id && stat -c %u:%g ~"],
                     environment={**NO_FIREWALL, "PUID": str(puid), "PGID": str(pgid)},
                     volumes={str(work): {"bind": "/workspace", "mode": "rw"}})
    assert ran.code == 0, ran
    made = work / "made-by-claude"
    assert (made.stat().st_uid, made.stat().st_gid) == (puid, pgid)
    assert f"uid={puid}(claude) gid={pgid}(" in ran.out
    assert f"{puid}:{pgid}" in ran.out.splitlines()[-1]


def test_invalid_puid_is_refused_with_a_log_line(run_claude: Callable[..., Any]) -> None:
    ran = run_claude(["id", "-u"], environment={**NO_FIREWALL, "PUID": "0", "PGID": "x"})
    assert ran.code == 0, ran
    assert ran.out.strip() == "1000"
    assert ("sidecar: PUID '0' is not a positive number; PGID 'x' is not a positive number: "
            "refused, claude keeps 1000:1000 (set PUID/PGID to your own ids: id -u, id -g)\n"
            ) in ran.err


def _seed(tmp_path: Path, content: str) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / ".credentials.json").write_text(content)
    return seed


@pytest.fixture
def config_volume(docker_client: Any) -> Iterator[str]:
    """A named volume like the rendered compose's config volume (removed after the test's
    containers: request it before run_claude)."""
    volume = docker_client.volumes.create(labels={"dev.claude-sidecar.test": "1"})
    yield volume.name
    volume.remove(force=True)


def test_seed_copied_only_when_absent(config_volume: str, run_claude: Callable[..., Any],
                                      tmp_path: Path) -> None:
    seed = _seed(tmp_path, '{"seed": true}')
    mounts = {str(seed): {"bind": "/run/sidecar/seed", "mode": "ro"},
              config_volume: {"bind": "/home/claude/.claude", "mode": "rw"}}
    env = {**NO_FIREWALL, "PUID": "1234", "PGID": "1234"}
    show = ["sh", "-c", "stat -c '%u:%g %a' $CLAUDE_CONFIG_DIR/.credentials.json; "
                        "cat $CLAUDE_CONFIG_DIR/.credentials.json"]
    first = run_claude(show, environment=env, volumes=mounts)
    assert first.code == 0, first
    assert first.out.splitlines() == ["1234:1234 600", '{"seed": true}']
    assert "credentials: seeded" in first.err
    # The agent (re)authenticated: the volume's file wins over the seed from now on.
    changed = run_claude(["sh", "-c", "echo '{\"mine\": 1}' > $CLAUDE_CONFIG_DIR/"
                                      ".credentials.json"], environment=env, volumes=mounts)
    assert changed.code == 0, changed
    again = run_claude(show, environment=env, volumes=mounts)
    assert again.out.splitlines() == ["1234:1234 600", '{"mine": 1}']
    assert "keeping the ones in" in again.err


def test_broken_bridge_yaml_starts_and_routed_commands_explain(
        run_claude: Callable[..., Any], tmp_path: Path) -> None:
    sidecar_dir = tmp_path / "work" / ".sidecar"
    sidecar_dir.mkdir(parents=True)
    (sidecar_dir / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  php:\n    container: app\n    exec: 5\n')
    container = run_claude(detach=True, environment=dict(NO_FIREWALL),
                           volumes={str(tmp_path / "work"): {"bind": "/workspace",
                                                             "mode": "rw"}})
    logs = wait_for_log(container, "ready (uid")
    assert "bridge.yaml problem, routed commands will explain it until fixed" in logs
    result = container.exec_run(["php", "-v"], user="claude", demux=True)
    assert result.exit_code == 125
    assert b"invalid bridge.yaml" in result.output[1]
    assert b"exec" in result.output[1]


def test_valid_bridge_yaml_installs_wrappers(run_claude: Callable[..., Any],
                                             tmp_path: Path) -> None:
    sidecar_dir = tmp_path / "work" / ".sidecar"
    sidecar_dir.mkdir(parents=True)
    (sidecar_dir / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  php:\n    container: app\n    exec: php\n'
        '  composer:\n    container: app\n    exec: composer\n')
    script = "command -v php; command -v composer; readlink /opt/sidecar/wrappers/php"
    ran = run_claude(["sh", "-c", script],
                     environment=dict(NO_FIREWALL),
                     volumes={str(tmp_path / "work"): {"bind": "/workspace", "mode": "ro"}})
    assert ran.code == 0, ran
    assert ran.out.split() == ["/opt/sidecar/wrappers/php", "/opt/sidecar/wrappers/composer",
                               ".sidecar-dispatch"]
    assert "routed commands: composer php" in ran.err


def test_not_root_is_explained(run_claude: Callable[..., Any]) -> None:
    ran = run_claude(["id", "-un"], user="claude", environment=dict(NO_FIREWALL))
    assert ran.code == 0
    assert ran.out.strip() == "claude"
    assert "not started as root" in ran.err
    # Nothing was set up, so nothing is ready: the healthcheck says so, in one clean line.
    container = run_claude(detach=True, user="claude", environment=dict(NO_FIREWALL))
    result = container.exec_run(["/usr/local/sbin/sidecar-health"])
    assert (result.exit_code, result.output.decode()) == (
        1, "the container was not set up by its entrypoint (started with `user:` or another "
           "entrypoint?); Claude Code will not start. To fix: start it as root with the "
           "image's entrypoint, see docker compose logs claude\n")


def test_image_labels_and_entrypoint(docker_client: Any, claude_image: str) -> None:
    config = docker_client.images.get(claude_image).attrs["Config"]
    assert config["Entrypoint"][0] == "/usr/bin/tini"
    assert config["Entrypoint"][-1] == "/usr/local/sbin/sidecar-entrypoint"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["CLAUDE_CONFIG_DIR"] == "/home/claude/.claude"
    assert env["SIDECAR_CONFIG_DIR"] == "/workspace/.sidecar"
    # `docker compose exec` sees the image's environment, not the entrypoint's exports.
    assert env["DOCKER_HOST"] == "tcp://sidecar-gate:2375"
    assert config["Labels"]["dev.claude-sidecar.claude-install"] == "none"


def test_the_approved_bridge_yaml_wins_over_the_workspace(run_claude: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    # What `sidecar up` approved (/run/sidecar/policy) is what the wrappers and Claude Code's
    # routed commands use, not the workspace copy the agent can reach through a target.
    work = tmp_path / "work" / ".sidecar"
    work.mkdir(parents=True)
    (work / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  fromworkspace: {container: app, exec: x}\n')
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "bridge.yaml").write_text(
        'version: "1"\ncommands:\n  fromapproved: {container: app, exec: x}\n')
    stub = tmp_path / "claude"
    stub.write_text('#!/bin/sh\necho "config=$BRIDGE_CONFIG"\n')
    stub.chmod(0o755)
    container = run_claude(detach=True, environment=dict(NO_FIREWALL),
                           volumes={str(tmp_path / "work"): {"bind": "/workspace", "mode": "ro"},
                                    str(policy): {"bind": "/run/sidecar/policy", "mode": "ro"},
                                    str(stub): {"bind": "/usr/local/bin/claude", "mode": "ro"}})
    result = container.exec_run(["claude"])  # waits for readiness: the wrappers exist then
    assert (result.exit_code, result.output.decode()) == (
        0, "config=/run/sidecar/policy/bridge.yaml\n")
    assert container.exec_run(["ls", "/opt/sidecar/wrappers"]).output.decode().split() == [
        "fromapproved"]


def test_runtime_venv_has_the_dependencies_but_not_the_host_only_ones(
        run_claude: Callable[..., Any]) -> None:
    # The docker SDK serves host-side commands only: it must not ship into the image,
    # while every other dependency must (the image's commands import them).
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    host_only = {_dist_key(n) for n in pyproject["tool"]["claude-sidecar"]
                 ["host-only-dependencies"]}
    wanted = {_dist_key(r) for r in pyproject["project"]["dependencies"]}
    assert "docker" in host_only
    assert host_only <= wanted, "a host-only dependency that is not a dependency"
    script = ("import importlib.metadata as m; "
              "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))")
    ran = run_claude(["/opt/sidecar/bin/python", "-I", "-c", script], user="root",
                     entrypoint=[])
    assert ran.code == 0, ran
    installed = {_dist_key(name) for name in ran.out.split()}
    assert wanted - host_only <= installed
    assert not host_only & installed
    # No pip or setuptools either: nothing at run time installs packages.
    assert not {"pip", "setuptools"} & installed


def _dist_key(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name[0]).lower()
