"""The image with the real Claude Code (CLAUDE_INSTALL=npm, the registry's latest), offline.

Claude Code runs through the `claude` wrapper as the non-root user, as `docker compose exec
claude claude` runs it: the version, YOLO mode (the flag is added, and Claude Code starts a
session in bypass mode instead of refusing it), the auto-updater, the native binary with no Node.
The containers have no network: nothing here reaches Anthropic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import TEST_LABEL, unique_name

from image.build import VERSION_LABEL
from image.conftest import wait_for_log

MAX_IMAGE_BYTES = 800 * 1000 * 1000


def offline() -> dict[str, Any]:
    """Container options: no network at all, so the firewall is off (nothing to filter)."""
    return {"network_mode": "none", "environment": {"SIDECAR_FIREWALL": "0"}}


@pytest.fixture(scope="module")
def claude_code(docker_client: Any, claude_code_image: str) -> Iterator[Any]:
    """One running container of the npm image, started by the real entrypoint, no network."""
    container = docker_client.containers.run(
        claude_code_image, name=unique_name("sidecar-cc"), detach=True,
        labels={TEST_LABEL: "1"}, **offline())
    try:
        wait_for_log(container, "ready (uid")
        yield container
    finally:
        container.remove(force=True)


def _exec(container: Any, argv: list[str], user: str = "root",
          env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = container.exec_run(argv, user=user, environment=env or {}, demux=True)
    out, err = result.output
    return result.exit_code, (out or b"").decode(), (err or b"").decode()


def _session_init(output: str) -> dict[str, Any]:
    """The `system/init` message a stream-json session prints before it calls the API."""
    for line in output.splitlines():
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("type") == "system" and message.get("subtype") == "init":
                return dict(message)
    raise AssertionError(f"no init message in:\n{output}")


def test_version_through_the_wrapper(claude_code: Any, docker_client: Any,
                                     claude_code_image: str) -> None:
    wanted = docker_client.images.get(claude_code_image).labels[VERSION_LABEL]
    code, out, err = _exec(claude_code, ["claude", "--version"])
    assert code == 0, err
    assert out.strip() == f"{wanted} (Claude Code)"
    code, out, _ = _exec(claude_code, ["sh", "-c", "command -v claude"], user="claude")
    assert out.strip() == "/usr/local/sidecar/bin/claude"


def test_the_binary_is_native_and_node_is_absent(claude_code: Any) -> None:
    script = r"""
head -c 4 /usr/local/bin/claude | od -An -c | tr -d ' '
stat -c '%U:%G:%a' /usr/local/bin/claude
for tool in node nodejs npm npx; do command -v "$tool" && echo "found $tool"; done
test -e /usr/local/lib/node_modules && echo "found node_modules"
dpkg-query -W -f '${Status} ${Package}\n' nodejs npm 2>/dev/null | grep '^install ok'
true
"""
    code, out, err = _exec(claude_code, ["bash", "-c", script])
    assert code == 0, err
    assert out.splitlines() == ["177ELF", "root:root:755"]


@pytest.mark.parametrize(("user", "yolo", "mode"), [
    ("root", "1", "bypassPermissions"),     # docker compose exec claude claude
    ("claude", "1", "bypassPermissions"),
    ("root", "", "default"),
])
def test_yolo_is_accepted_by_claude_code(claude_code: Any, user: str, yolo: str,
                                         mode: str) -> None:
    # A print-mode session: Claude Code parses the flags, checks them (as root it would refuse
    # --dangerously-skip-permissions), announces the session with its permission mode, and only
    # then fails to reach the API (no network).
    argv = ["claude", "-p", "hi", "--output-format", "stream-json", "--verbose"]
    _, out, err = _exec(claude_code, argv, user=user, env={"CLAUDE_YOLO": yolo})
    init = _session_init(out)
    assert init["permissionMode"] == mode, err
    assert "cannot be used with root" not in out + err


def test_claude_code_refuses_yolo_as_root(claude_code: Any) -> None:
    # Why the wrapper drops to `claude`: the same flag, given to the binary as root, is refused.
    argv = ["/usr/local/bin/claude", "--dangerously-skip-permissions", "-p", "hi",
            "--output-format", "stream-json", "--verbose"]
    code, out, err = _exec(claude_code, argv)
    assert code != 0
    assert "cannot be used with root/sudo privileges" in out + err


def test_auto_updater_is_off(claude_code: Any) -> None:
    code, out, err = _exec(claude_code, ["claude", "doctor"])
    assert code == 0, err
    disabled = r"^Auto-updates: disabled \(set by env: DISABLE_AUTOUPDATER\)$"
    assert re.search(disabled, out, re.M), out
    # The control: without the image's variable, Claude Code reports the updater on.
    _, out, _ = _exec(claude_code, ["env", "-u", "DISABLE_AUTOUPDATER", "claude", "doctor"])
    assert re.search(r"^Auto-updates: enabled", out, re.M), out


def test_doctor_does_not_ask_for_a_second_install(claude_code: Any) -> None:
    # The image owns the binary: `claude doctor` must not send the user to `claude install`.
    _, out, _ = _exec(claude_code, ["claude", "doctor"])
    assert "Running: native" in out, out
    assert "claude install" not in out, out
    _, out, _ = _exec(claude_code, ["env", "-u", "DISABLE_INSTALLATION_CHECKS", "claude",
                                    "doctor"])
    assert "claude install" in out, "control: the check this image turns off did not run"


def test_image_size(docker_client: Any, claude_code_image: str) -> None:
    image = docker_client.images.get(claude_code_image)
    layers = "\n".join(f"{layer['Size'] / 1e6:8.1f} MB  {layer['CreatedBy'][:100]}"
                       for layer in image.history())
    assert image.attrs["Size"] <= MAX_IMAGE_BYTES, layers


def test_image_records_the_install_method(docker_client: Any, claude_code_image: str) -> None:
    labels = docker_client.images.get(claude_code_image).labels
    assert labels["dev.claude-sidecar.claude-install"] == "npm"


def test_claude_code_runs_as_the_containers_command(
        run_claude_code: Callable[..., Any]) -> None:
    # `docker compose run claude claude --version`: the entrypoint runs the command as claude.
    ran = run_claude_code(["claude", "--version"], **offline())
    assert ran.code == 0, ran
    assert ran.out.strip().endswith("(Claude Code)")
