"""The Claude image's own files, rendered at image build time: the entrypoint, `claude`, and
the readiness check `sidecar-health`.

They run as root (the entrypoint, the healthcheck) or decide whether to drop to the agent's user
and whether Claude Code may start (the wrapper), so they are baked into the image instead of
being read from the workspace the agent can edit, and they are rendered with the image's build
arguments (uid, gid), its paths and the ids it uses (`ids`), so they always match the
tools installed next to them. Per-project settings reach them through environment variables set
by the rendered compose file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sidecar_gen import templating
from sidecar_gen.firewall import FORWARDER_PID
from sidecar_gen.fsutil import write_atomic
from sidecar_gen.image.ids import ReservedIds, reserved_ids, this_system
from sidecar_gen.runtime import names


@dataclass(frozen=True)
class ImageLayout:
    """The image's names and paths (`runtime/names`), with the build's uid and gid."""

    user: str = names.AGENT_USER
    uid: int = 1000
    gid: int = 1000
    home: str = names.AGENT_HOME
    config_dir: str = names.CLAUDE_CONFIG
    workspace: str = names.WORKSPACE
    venv: str = names.VENV
    wrapper_dir: str = names.WRAPPER_DIR
    claude_wrapper_dir: str = names.CLAUDE_WRAPPER_DIR
    claude_binary: str = names.CLAUDE_BINARY
    entrypoint: str = names.ENTRYPOINT
    health: str = names.HEALTH
    ready_file: str = names.READY_FILE
    policy_dir: str = names.POLICY_DIR
    forwarder_pid: str = str(FORWARDER_PID)
    dns_user: str = names.DNS_USER
    seed_dir: str = names.SEED_DIR
    docker_host: str = names.GATE_URL
    git_broker_url: str = names.BROKER_GIT_URL

    @property
    def as_user(self) -> str:
        """The shell words that run a command as the agent's user from root, for good: no
        capability left in its bounding set and no new privileges, so no setuid-root or
        file-capability binary (today's or a future one) can hand it NET_ADMIN or root."""
        return (f'setpriv --reuid={self.user} --regid="$(id -g {self.user})" --init-groups '
                "--no-new-privs --inh-caps=-all --bounding-set=-all --")

    @property
    def user_path(self) -> str:
        """PATH of the agent's user: routed commands first, then the `claude` wrapper."""
        return ":".join((self.wrapper_dir, self.claude_wrapper_dir, "/usr/local/sbin",
                         "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))


def _ids(table: dict[int, str]) -> str:
    return " ".join(str(i) for i in sorted(table))


def render_entrypoint(layout: ImageLayout | None = None,
                      reserved: ReservedIds | None = None) -> str:
    """The entrypoint script's text for an image layout and the ids the image reserves."""
    layout = layout or ImageLayout()
    reserved = reserved or ReservedIds()
    return templating.render("entrypoint.sh.j2", **asdict(layout), user_path=layout.user_path,
                             as_user=layout.as_user,
                             reserved_uids=_ids(reserved.uids),
                             reserved_gids=_ids(reserved.gids))


def render_claude_wrapper(layout: ImageLayout | None = None) -> str:
    """The `claude` wrapper's text: waits for readiness, drops root, adds YOLO when asked."""
    layout = layout or ImageLayout()
    return templating.render("claude-wrapper.sh.j2", **asdict(layout),
                             user_path=layout.user_path, as_user=layout.as_user)


def render_health(layout: ImageLayout | None = None) -> str:
    """`sidecar-health`: the readiness check of the healthcheck and the wrapper."""
    layout = layout or ImageLayout()
    return templating.render("health.sh.j2", **asdict(layout))


def install_image_files(uid: int = 1000, gid: int = 1000, root: Path = Path("/"),
                        reserved: ReservedIds | None = None) -> list[Path]:
    """Write the entrypoint, `claude` and `sidecar-health` under `root` (mode 0755).

    Called once by the Dockerfile with the image's build arguments, as its last step, so the
    ids the image reserves are read from the finished file system (unless given).
    """
    layout = ImageLayout(uid=uid, gid=gid)
    if reserved is None:
        reserved = this_system(uid, gid) if root == Path("/") else reserved_ids(root, uid, gid)
    written = []
    for target, text in ((layout.entrypoint, render_entrypoint(layout, reserved)),
                         (f"{layout.claude_wrapper_dir}/claude", render_claude_wrapper(layout)),
                         (layout.health, render_health(layout))):
        path = root / target.lstrip("/")
        write_atomic(path, text, mode=0o755)
        written.append(path)
    return written
