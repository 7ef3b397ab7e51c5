"""The dispatcher that runs inside the Claude container: stdlib-only, imported on every command."""
