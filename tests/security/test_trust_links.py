"""The agent against `sidecar up` with links and special files, on a real engine.

A bind source the agent swaps for a link: compose's model still names `./data`, yet the engine
follows the link whenever it mounts the source, so the next start would hand a host folder of
its choosing to a routed service. `sidecar up` refuses it (the real path is in the compared
model), and the refusal is proven by its effect: the container is not recreated and does not
see the host folder, while a plain engine restart (outside `sidecar up`) does see it. And a FIFO
planted through a routed command is refused by name at once instead of hanging `up`.
"""

from __future__ import annotations

import os
import shutil

import pytest

from security.trust_stack import PGID, PUID, TrustStack, trust_stack

__all__ = ["trust_stack"]  # fixture

pytestmark = pytest.mark.slow

DATA_OVERRIDE = "services:\n  app:\n    volumes: [\"./:/app\", \"./data:/data\"]\n"


def _data_ids(stack: TrustStack) -> dict[str, str]:
    return {s: stack.container(s).id for s in ("claude", "sidecar-gate", "app")}


def test_a_bind_source_swapped_for_a_link_is_refused_by_up(trust_stack: TrustStack) -> None:
    stack = trust_stack
    secret_dir = stack.root.parent / f"{stack.project}-host-secrets"
    secret_dir.mkdir()
    (secret_dir / "id_rsa").write_text("host private key\n")
    data = stack.root / "data"
    data.mkdir()
    os.chown(data, PUID, PGID)
    stack.write("compose.override.yaml", DATA_OVERRIDE)
    try:
        trusted = stack.sidecar("trust", "--yes")
        assert trusted.returncode == 0, trusted.stdout + trusted.stderr
        up = stack.sidecar("up", "--", "app")
        assert up.returncode == 0, up.stdout + up.stderr
        stack.wait_ready()
        # The agent, through the routed command: ./data becomes a link to the host folder.
        swap = stack.routed(f"rmdir /app/data && ln -s {secret_dir} /app/data")
        assert swap.returncode == 0, swap
        before = _data_ids(stack)
        refused = stack.sidecar("up")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "effective compose model" in refused.stderr
        assert f'+services.app.volumes[1].x-sidecar-resolved: "{secret_dir}"' in refused.stdout
        assert _data_ids(stack) == before
        app = stack.container("app")
        assert app.exec_run(["cat", "/data/id_rsa"]).exit_code != 0
        # Control: the engine does follow the link at a start (why the refusal matters).
        app.restart(timeout=1)
        assert app.exec_run(["cat", "/data/id_rsa"]).output == b"host private key\n"
    finally:
        if data.is_symlink():
            data.unlink()
        shutil.rmtree(secret_dir, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        stack.restore()


def test_a_fifo_planted_through_a_target_is_refused_at_once(trust_stack: TrustStack) -> None:
    stack = trust_stack
    # Compose ignores docker-compose.override.yml next to compose.yaml: only `up` would wait.
    plant = stack.routed("mkfifo /app/docker-compose.override.yml")
    assert plant.returncode == 0, plant
    fifo = stack.root / "docker-compose.override.yml"
    try:
        before = _data_ids(stack)
        up = stack.sidecar("up", timeout=60)
        assert up.returncode == 2, up.stdout + up.stderr
        assert up.stderr.strip().endswith(
            "docker-compose.override.yml: is a FIFO, not a regular file (remove it)")
        assert _data_ids(stack) == before
    finally:
        fifo.unlink(missing_ok=True)
