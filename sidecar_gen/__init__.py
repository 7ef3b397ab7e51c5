"""claude-sidecar: run Claude Code in a locked-down container next to a compose project.

Kept tiny on purpose: the dispatcher imports this package on every routed command.
"""

__version__ = "0.1.0"
