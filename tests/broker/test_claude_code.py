"""The agent in the loop: the real Claude Code (the npm image), through the image's wrapper as
user claude, with ANTHROPIC_BASE_URL at the broker (a container of the same image on a test
network) and only a placeholder credential; the broker talks TLS to the scripted Messages API,
which records what arrived. The full rendered stack with routed commands is phase 2."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, TEST_LABEL, unique_name
from image.conftest import wait_for_log
from jsonschema import Draft202012Validator

from broker.conftest import API_KEY, API_PLACEHOLDER, OAUTH, OAUTH_PLACEHOLDER, write_secrets
from broker.standin import (
    Recorded,
    Reply,
    StandIn,
    TestCA,
    text_reply,
    tool_results,
    tool_use_reply,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SCHEMA = json.loads((REPO / "schemas" / "broker-request.schema.json").read_text())
BROKER_UID = 65534
COMMAND = "echo broker-tool-$((6*7)); id -un"


def agent_script(record: Recorded) -> Reply:
    """One Bash tool call, then a text answer quoting the tool's result once it comes back."""
    if record.path == "/v1/messages":
        results = tool_results(record)
        if results:
            content = results[0].get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            return text_reply(f"The command printed: {text}", pieces=3)
        tools = record.json().get("tools") or []
        if any(tool.get("name") == "Bash" for tool in tools):
            return tool_use_reply("Bash", {"command": COMMAND, "description": "Say hello"})
    return text_reply("ok")


@pytest.fixture
def network(docker_client: Any) -> Iterator[Any]:
    net = docker_client.networks.create(unique_name("sidecar-broker-net"),
                                        labels={TEST_LABEL: "1"})
    try:
        yield net
    finally:
        net.remove()


@dataclass
class Site:
    """The test network, this host's address on it, the stand-in there, and its CA."""

    network: Any
    gateway: str
    upstream: StandIn
    ca: TestCA


@pytest.fixture
def site(network: Any, test_ca: TestCA) -> Iterator[Site]:
    """The stand-in on this host, reachable from the test network at its gateway (its
    certificate names upstream.test, which the broker's container resolves to it)."""
    network.reload()
    gateway = str(network.attrs["IPAM"]["Config"][0]["Gateway"])
    server = StandIn(agent_script, ca=test_ca, host=gateway)
    yield Site(network, gateway, server, test_ca)
    server.close()


def _start(docker_client: Any, image: str, created: list[Any], **kwargs: Any) -> Any:
    container = docker_client.containers.run(image, detach=True, labels={TEST_LABEL: "1"},
                                             **kwargs)
    created.append(container)
    return container


@dataclass(frozen=True)
class Auth:
    """One kind of credential: the real one in the broker, the placeholder in claude."""

    kind: str
    secret: str
    variable: str
    placeholder: str
    header: str
    sent: str


AUTHS = [Auth("api_key", API_KEY, "ANTHROPIC_API_KEY", API_PLACEHOLDER, "x-api-key", API_KEY),
         Auth("oauth_token", OAUTH, "CLAUDE_CODE_OAUTH_TOKEN", OAUTH_PLACEHOLDER,
              "authorization", f"Bearer {OAUTH}")]


@pytest.mark.parametrize("auth", AUTHS, ids=["api-key", "oauth-token"])
def test_claude_code_answers_through_the_broker(
        docker_client: Any, claude_code_image: str, site: Site, tmp_path: Path,
        auth: Auth) -> None:
    network, gateway, upstream, test_ca = site.network, site.gateway, site.upstream, site.ca
    kind, secret, variable, placeholder, header, sent = (
        auth.kind, auth.secret, auth.variable, auth.placeholder, auth.header, auth.sent)
    folder = tmp_path / "broker"
    secrets = write_secrets(folder / "secrets", **{kind: secret})
    (folder / "ca.pem").write_bytes(test_ca.ca_cert.read_bytes())
    for path in (folder, secrets, *secrets.iterdir()):
        path.chmod(0o700 if path.is_dir() else 0o400)
        os.chown(path, BROKER_UID, BROKER_UID)
    created: list[Any] = []
    try:
        # The broker as phase 2 renders it: its own unprivileged user, nothing writable, no
        # capability, the secrets only in its own mount.
        broker = _start(
            docker_client, claude_code_image, created, name=unique_name("sidecar-broker"),
            entrypoint=["sidecar", "broker", f"--upstream=https://upstream.test:{upstream.port}",
                        "--ca-file=/run/broker/ca.pem", "--secrets=/run/broker/secrets"],
            user=f"{BROKER_UID}:{BROKER_UID}", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"], pids_limit=96, mem_limit="128m",
            volumes={str(folder): {"bind": "/run/broker", "mode": "ro"}},
            extra_hosts={"upstream.test": gateway},
            network=network.name)
        network.disconnect(broker)
        network.connect(broker, aliases=["sidecar-broker"])
        wait_for_log(broker, "sidecar broker: listening on")
        claude = _start(
            docker_client, claude_code_image, created, name=unique_name("sidecar-cc"),
            network=network.name,
            environment={"SIDECAR_FIREWALL": "0", "CLAUDE_YOLO": "1",
                         "ANTHROPIC_BASE_URL": "http://sidecar-broker:8080",
                         variable: placeholder,
                         "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
        wait_for_log(claude, "ready (uid")
        result = claude.exec_run(["claude", "-p", "Run the hello command, then report.",
                                  "--output-format", "stream-json", "--verbose"],
                                 user="claude", demux=True)
        out = (result.output[0] or b"").decode()
        err = (result.output[1] or b"").decode()
        assert result.exit_code == 0, out[-3000:] + err[-3000:]
        final = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
        assert final["type"] == "result" and final["is_error"] is False, final
        assert "The command printed: broker-tool-42" in final["result"]

        broker.reload()
        broker_ip = broker.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        calls = [r for r in upstream.requests if r.path == "/v1/messages"]
        assert len(calls) >= 2
        for call in calls:
            # The real credential arrived, from the broker, never the placeholder.
            assert call.header_all(header) == [sent]
            assert placeholder not in json.dumps(call.headers)
            assert call.peer.split(":")[0] == broker_ip
        # The Bash tool ran, as user claude, and its result reached the stand-in.
        (answered,) = [c for c in calls if tool_results(c)]
        assert tool_results(answered)[0]["content"].split() == ["broker-tool-42", "claude"]
        assert tool_results(answered)[0].get("is_error") in (None, False)

        # The claude container held only the placeholder.
        claude.reload()
        env = claude.attrs["Config"]["Env"]
        assert f"{variable}={placeholder}" in env and not any(secret in e for e in env)
        search = claude.exec_run(["sh", "-c", f"grep -rlsF -- '{secret}' /home/claude /tmp /run "
                                  "/workspace /proc/[0-9]*/environ; echo done"], user="root")
        assert search.output.decode().strip() == "done", search.output

        # The audit record: one line per request, following its schema, with the usage.
        lines = [json.loads(line) for line in broker.logs(stdout=False).decode().splitlines()
                 if line.startswith("{")]
        for line in lines:
            Draft202012Validator(SCHEMA).validate(line)
        forwarded = [line for line in lines if line.get("path", "").startswith("/v1/messages")]
        assert len(forwarded) == len(calls)
        assert {(line["input_tokens"], line["output_tokens"]) for line in forwarded} >= \
            {(23, 9), (11, 7)}
        assert all(line["model"] == "claude-test-1" for line in forwarded)
        assert secret not in broker.logs().decode()
    finally:
        for container in created:
            container.remove(force=True)
