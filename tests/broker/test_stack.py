"""Issue 22's "Done when", in a rendered stack started by `sidecar up`: the real Claude Code (the
npm image, `claude -p` through the image's wrapper as user claude) answers a scripted prompt
through the broker, which holds the real test key; its Bash tool runs a routed command in the
app container; the stand-in (the broker's upstream, TLS with a test CA) saw the real key while
claude held only the placeholder; `docker inspect` of every container shows no secret;
`sidecar doctor` finds the secret nowhere as user claude (and finds one planted); exec into the
broker from claude is refused by the gate, proven by the engine's exec records.

One stack, one test (about 60-90 s with the npm image built; the image is shared with
test_claude_code.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BUSYBOX_IMAGE, unique_name

from broker.conftest import API_KEY, API_PLACEHOLDER
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
PUID = 1234
COMMAND = "appsh -c 'echo routed-$((6*7)); hostname'"


def agent_script(record: Recorded) -> Reply:
    """One Bash tool call running the routed command, then a text answer quoting its result."""
    if record.path == "/v1/messages":
        results = tool_results(record)
        if results:
            content = results[0].get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            return text_reply(f"The command printed: {text}", pieces=3)
        if any(tool.get("name") == "Bash" for tool in record.json().get("tools") or []):
            return tool_use_reply("Bash", {"command": COMMAND, "description": "Run it"})
    return text_reply("ok")


def _files(root: Path, project: str, image: str, ca: Path, port: int) -> None:
    (root / ".sidecar").mkdir(parents=True)
    (root / "compose.yaml").write_text(
        "services:\n  app:\n"
        f"    image: {BUSYBOX_IMAGE}\n"
        "    entrypoint: [sh, -c, 'exec sleep 3600']\n    init: true\n"
        "    volumes: ['.:/app']\n")
    (root / ".sidecar" / "bridge.yaml").write_text(f"""\
version: "1"
commands:
  appsh:
    container: app
    exec: sh
    workdir: /app
    user: "${{PUID}}:${{PGID}}"
    paths:
      /workspace: /app
sidecar:
  project: {project}
  image: {image}
  firewall: {{enabled: false}}
  broker:
    upstream: https://upstream.test:{port}
    ca_certificates: {ca}
""")


def _run(argv: list[str], root: Path, env: dict[str, str],
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_claude_code_through_the_broker_in_the_rendered_stack(
        docker_client: Any, claude_code_image: str, test_ca: TestCA, tmp_path: Path,
        sidecar_cli: list[str]) -> None:
    upstream = StandIn(agent_script, ca=test_ca, host="0.0.0.0")
    project = unique_name("brokerstack")
    root = tmp_path / project
    ca = tmp_path / "ca.pem"  # outside the project: the agent cannot touch it
    ca.write_bytes(test_ca.ca_cert.read_bytes())
    _files(root, project, claude_code_image, ca, upstream.port)
    for path in [root, *root.rglob("*")]:
        os.lchown(path, PUID, PUID)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update({"PUID": str(PUID), "PGID": str(PUID), "COMPOSE_PROJECT_NAME": project,
                "XDG_STATE_HOME": str(tmp_path / "state"), "CLAUDE_YOLO": "1",
                "ANTHROPIC_API_KEY": API_KEY})
    label = f"com.docker.compose.project={project}"
    try:
        render = _run([*sidecar_cli, "render"], root, env)
        assert render.returncode == 0, render.stdout + render.stderr
        # The broker reaches the stand-in on this host (upstream.test is in its certificate).
        (root / "compose.override.yaml").write_text(
            "services:\n  sidecar-broker:\n    extra_hosts: ['upstream.test:host-gateway']\n")
        up = _run([*sidecar_cli, "up"], root, env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "the broker holds the Anthropic API key from environment ANTHROPIC_API_KEY" \
            in up.stderr
        assert API_KEY not in up.stdout + up.stderr
        containers = {c.labels["com.docker.compose.service"]: c for c in
                      docker_client.containers.list(filters={"label": label})}
        claude, broker, app = containers["claude"], containers["sidecar-broker"], \
            containers["app"]
        deadline = time.monotonic() + 60
        while claude.exec_run(["appsh", "-c", "true"], user="claude").exit_code != 0:
            assert time.monotonic() < deadline, "the routed command never worked"
            time.sleep(0.5)

        result = claude.exec_run(["claude", "-p", "Run the command, then report.",
                                  "--output-format", "stream-json", "--verbose"],
                                 user="claude", demux=True, workdir="/workspace")
        out = (result.output[0] or b"").decode()
        err = (result.output[1] or b"").decode()
        assert result.exit_code == 0, out[-3000:] + err[-3000:]
        final = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
        assert final["type"] == "result" and final["is_error"] is False, final
        app.reload()
        # The Bash tool's routed command ran in the app container (its host name), exit 0.
        calls = [r for r in upstream.requests if r.path == "/v1/messages"]
        (answered,) = [c for c in calls if tool_results(c)]
        tool = tool_results(answered)[0]
        assert tool["content"].split() == ["routed-42", app.attrs["Config"]["Hostname"]]
        assert tool.get("is_error") in (None, False)
        assert "The command printed: routed-42" in final["result"]
        # The stand-in saw the real key on every call, never the placeholder.
        assert len(calls) >= 2
        for call in calls:
            assert call.header_all("x-api-key") == [API_KEY]
            assert API_PLACEHOLDER not in json.dumps(call.headers)

        # Claude held only the placeholder; no container's configuration holds the key.
        claude.reload()
        assert f"ANTHROPIC_API_KEY={API_PLACEHOLDER}" in claude.attrs["Config"]["Env"]
        for container in docker_client.containers.list(all=True, filters={"label": label}):
            assert API_KEY not in json.dumps(container.attrs), container.name
        for name in ("compose.yml", "allowed-domains.txt"):
            assert API_KEY not in (root / ".sidecar" / name).read_text()
        # The key is in the broker's own file, readable by its user only.
        listing = broker.exec_run(["ls", "-ln", "/run/sidecar/broker-secrets"]).output.decode()
        assert "-r-------- 1 65534 65534" in listing, listing

        # Doctor: the broker answers, its upstream too, and the key is nowhere claude reads.
        doctor = _run([*sidecar_cli, "doctor", "--format", "json"], root, env)
        checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["broker"]["status"] == "ok", checks["broker"]
        assert checks["broker upstream"]["status"] == "ok", checks["broker upstream"]
        assert checks["secret"]["status"] == "ok", checks["secret"]
        assert API_KEY not in doctor.stdout + doctor.stderr
        # ... and its search is real: a copy where the agent can read it is found.
        planted = claude.exec_run(["sh", "-c", f"printf 'k=\"%s\"\\n' '{API_KEY}' > "
                                   "/home/claude/.claude/leak.txt"], user="claude")
        assert planted.exit_code == 0
        doctor = _run([*sidecar_cli, "doctor", "--format", "json"], root, env)
        checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["secret"]["status"] == "fail", checks["secret"]
        assert "/home/claude/.claude/leak.txt" in checks["secret"]["message"]
        assert API_KEY not in doctor.stdout + doctor.stderr

        # The agent cannot exec into the broker: the gate refuses, and the engine has no exec.
        broker.reload()
        before = broker.attrs.get("ExecIDs") or []
        script = ("import http.client, json\n"
                  "c = http.client.HTTPConnection('sidecar-gate', 2375, timeout=10)\n"
                  f"c.request('POST', '/v1.41/containers/{broker.id}/exec', json.dumps("
                  "{'Cmd': ['cat', '/run/sidecar/broker-secrets/api-key'], 'AttachStdout': "
                  "True}), {'Content-Type': 'application/json'})\n"
                  "r = c.getresponse(); print(r.status); print(r.read().decode())\n")
        refused = claude.exec_run(["python3", "-c", script], user="claude")
        status, _, message = refused.output.decode().partition("\n")
        assert status == "403", refused.output
        assert API_KEY not in message
        broker.reload()
        assert (broker.attrs.get("ExecIDs") or []) == before

        # The broker's audit record: the forwarded calls, no secret.
        logs = broker.logs().decode()
        forwarded = [json.loads(line) for line in logs.splitlines()
                     if line.startswith("{") and '"/v1/messages' in line]
        assert len(forwarded) == len(calls)
        assert API_KEY not in logs

        # The daily `up` finds the broker holding the key and restarts nobody; a new key is
        # written, the broker restarted (it reads its secret at start), and then forwarded.
        broker.reload()
        started = broker.attrs["State"]["StartedAt"]
        again = _run([*sidecar_cli, "up"], root, env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "(restarted)" not in again.stderr
        broker.reload()
        assert broker.attrs["State"]["StartedAt"] == started
        rotated = API_KEY.replace("REAL", "ROTATED")
        third = _run([*sidecar_cli, "up"], root, {**env, "ANTHROPIC_API_KEY": rotated})
        assert third.returncode == 0, third.stdout + third.stderr
        assert f"{broker.name} (restarted)" in third.stderr
        ask = ("import json, os, urllib.request\n"
               "r = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + "
               "'/v1/messages?beta=true', data=json.dumps({'model': 'claude-test-1', "
               "'max_tokens': 8, 'messages': [{'role': 'user', 'content': 'hi'}]}).encode(), "
               "headers={'x-api-key': os.environ['ANTHROPIC_API_KEY'], "
               "'anthropic-version': '2023-06-01', 'content-type': 'application/json'})\n"
               "print(urllib.request.urlopen(r, timeout=30).status)\n")
        asked = claude.exec_run(["python3", "-c", ask], user="claude")
        assert asked.output.decode().strip() == "200", asked.output
        assert upstream.requests[-1].header_all("x-api-key") == [rotated]
    finally:
        _run(["docker", "compose", "-p", project, "down", "-v", "--remove-orphans", "-t", "1"],
             root, env, timeout=120)
        upstream.close()
