"""The stack's names are declared once (`runtime/names.py`): the Dockerfile, which cannot import
them, is pinned to them here, and the templates take them from the render context."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from sidecar_gen.image.files import ImageLayout
from sidecar_gen.runtime import names

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
TEMPLATES = sorted((REPO / "templates").rglob("*.j2"))


def _final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def _instructions(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction of the image's stage, continuations joined."""
    text = _final_stage().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines()
            if line.split(None, 1)[:1] == [keyword]]


def test_the_images_environment_is_the_names() -> None:
    env: dict[str, str] = {}
    for args in _instructions("ENV"):
        env.update(word.split("=", 1) for word in shlex.split(args))
    assert env["DOCKER_HOST"] == names.GATE_URL
    assert env[names.WORKSPACE_ENV] == names.WORKSPACE
    assert env[names.CONFIG_DIR_ENV] == f"{names.WORKSPACE}/{names.CONFIG_DIR}"
    assert env[names.POLICY_DIR_ENV] == names.POLICY_DIR
    assert env["CLAUDE_CONFIG_DIR"] == names.CLAUDE_CONFIG
    assert env["PATH"] == ImageLayout().user_path


def test_the_images_paths_and_users_are_the_names() -> None:
    assert _instructions("WORKDIR") == [names.WORKSPACE]
    (entrypoint,) = _instructions("ENTRYPOINT")
    assert json.loads(entrypoint)[-1] == names.ENTRYPOINT
    run = " ".join(" ".join(_instructions("RUN")).split())
    for fragment in (
            f"python3 -m venv --without-pip {names.VENV} ",
            f"install -d -m 0755 {names.WRAPPER_DIR} ",
            f"install -d -m 0755 {names.RUN_DIR} {names.FIREWALL_STATE_DIR} ",
            f'useradd --non-unique --uid "$CLAUDE_UID" --gid "$CLAUDE_GID" --create-home '
            f"--home-dir {names.AGENT_HOME} --shell /bin/bash {names.AGENT_USER} ",
            f"install -d -o {names.AGENT_USER} -g {names.AGENT_USER} -m 0700 "
            f"{names.CLAUDE_CONFIG} ",
            f"--shell /usr/sbin/nologin {names.DNS_USER} "):
        assert fragment in run, fragment


def test_the_generated_compose_file_takes_the_names_from_the_context() -> None:
    text = (REPO / "templates" / "compose.yml.j2").read_text(encoding="utf-8")
    for value in (names.GATE_SERVICE, names.CONFIG_VOLUME, names.POLICY_VOLUME, names.RUN_DIR,
                  names.GATE_CONFIG_DIR, names.ENGINE_SOCKET, names.VENV, names.HEALTH,
                  names.CLAUDE_CONFIG, str(names.GATE_PORT), str(names.VIEWER_PORT),
                  *names.PASSTHROUGH_ENV):
        assert value not in text, value
    for variable in (names.BRIDGE_CONFIG_ENV, names.CONFIG_DIR_ENV, names.POLICY_DIR_ENV,
                     names.WORKSPACE_ENV):
        assert not re.search(rf"^\s*{variable}:", text, re.MULTILINE), variable


def test_every_sidecar_variable_of_the_image_and_templates_is_declared() -> None:
    from sidecar_gen.firewall import state

    declared = {v for v in vars(names).values() if isinstance(v, str)}
    declared |= {o.env for o in state.OPTIONS} | {state.ENABLED_ENV, state.GITHUB_ENV}
    for path in [REPO / "Dockerfile", *TEMPLATES]:
        used = set(re.findall(r"\bSIDECAR_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
        assert used <= declared, (path.name, sorted(used - declared))
