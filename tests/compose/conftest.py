"""The compose project fixtures of the trust tests (a folder, its environment, the target)."""

from trust.conftest import compose_config, env, project, target

__all__ = ["compose_config", "env", "project", "target"]
