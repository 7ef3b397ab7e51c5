"""The Claude image's own files, rendered at image build time: the entrypoint and `claude`.

Both run as root (the entrypoint) or decide whether to drop to the agent's user (the wrapper), so
they are baked into the image instead of being read from the workspace the agent can edit, and
they are rendered with the image's build arguments (uid, gid) and paths, so they always match the
tools installed next to them. Per-project settings reach them through environment variables set
by the rendered compose file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sidecar_gen import templating
from sidecar_gen.fsutil import write_atomic


@dataclass(frozen=True)
class ImageLayout:
    """Names and paths the image contract fixes (the rendered compose relies on them)."""

    user: str = "claude"
    uid: int = 1000
    gid: int = 1000
    home: str = "/home/claude"
    config_dir: str = "/home/claude/.claude"
    workspace: str = "/workspace"
    venv: str = "/opt/sidecar"
    wrapper_dir: str = "/opt/sidecar/wrappers"
    claude_wrapper_dir: str = "/usr/local/sidecar/bin"
    claude_binary: str = "/usr/local/bin/claude"
    entrypoint: str = "/usr/local/sbin/sidecar-entrypoint"
    seed_dir: str = "/run/sidecar/seed"
    docker_host: str = "tcp://sidecar-gate:2375"

    @property
    def user_path(self) -> str:
        """PATH of the agent's user: routed commands first, then the `claude` wrapper."""
        return ":".join((self.wrapper_dir, self.claude_wrapper_dir, "/usr/local/sbin",
                         "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))


def render_entrypoint(layout: ImageLayout | None = None) -> str:
    """The entrypoint script's text for an image layout."""
    layout = layout or ImageLayout()
    return templating.render("entrypoint.sh.j2", **asdict(layout), user_path=layout.user_path)


def render_claude_wrapper(layout: ImageLayout | None = None) -> str:
    """The `claude` wrapper's text: drops root to the agent's user, adds YOLO when asked."""
    layout = layout or ImageLayout()
    return templating.render("claude-wrapper.sh.j2", **asdict(layout),
                             user_path=layout.user_path)


def install_image_files(uid: int = 1000, gid: int = 1000, root: Path = Path("/")) -> list[Path]:
    """Write the entrypoint and the `claude` wrapper under `root` (mode 0755); return the paths.

    Called once by the Dockerfile with the image's build arguments.
    """
    layout = ImageLayout(uid=uid, gid=gid)
    written = []
    for target, text in ((layout.entrypoint, render_entrypoint(layout)),
                         (f"{layout.claude_wrapper_dir}/claude", render_claude_wrapper(layout))):
        path = root / target.lstrip("/")
        write_atomic(path, text, mode=0o755)
        written.append(path)
    return written
