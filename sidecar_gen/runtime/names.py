"""The stack's names and paths, declared once.

What the project folder, the generated compose file, the image and the code must agree on:
the files under `.sidecar/`, the services and volumes `sidecar render` generates, the gate's
port, the paths inside the image and the environment variables that carry them. The code
imports them from here; every template gets them as `names` (`templating` puts this module's
constants into its one Jinja environment); a test pins the Dockerfile and the templates' words
to them (tests/runtime/test_names.py). The labels compose and `sidecar render` put on containers are
the contract's (`runtime/contract.py`); the firewall's own variables are its option table's
(`firewall/options.py`).

A new service of the stack (a credential broker, say) adds its service name, port and
variables here, and its paths under RUN_DIR (as the egress recorder would: `RUN_DIR/egress`).

Constants only and stdlib-free: the dispatcher imports it on every command.
"""

from __future__ import annotations

# -- the project folder -------------------------------------------------------------------------

CONFIG_DIR = ".sidecar"  # in the project: bridge.yaml and the files generated from it
CONFIG_NAME = "bridge.yaml"
DOMAINS_NAME = "allowed-domains.txt"  # the egress allowlist, rendered from bridge.yaml
GENERATED_COMPOSE = "compose.yml"  # the generated stack, in CONFIG_DIR

# -- the services and volumes `sidecar render` generates ----------------------------------------

CLAUDE_SERVICE = "claude"
GATE_SERVICE = "sidecar-gate"
VIEWER_SERVICE = "viewer"
BROKER_SERVICE = "sidecar-broker"  # the credential broker: the one holder of the real secret
MANAGED_SERVICES = (CLAUDE_SERVICE, GATE_SERVICE, VIEWER_SERVICE, BROKER_SERVICE)
CONFIG_VOLUME = "claude-config"  # Claude Code's settings and history
POLICY_VOLUME = "sidecar-policy"  # the approved policy: written by `sidecar up` only
SECRETS_VOLUME = "sidecar-secrets"  # the broker's secret: written by `sidecar up` only

# -- ports --------------------------------------------------------------------------------------

GATE_PORT = 2375
GATE_URL = f"tcp://{GATE_SERVICE}:{GATE_PORT}"  # the claude container's DOCKER_HOST
VIEWER_PORT = 3000  # the viewer's port in its own container
BROKER_PORT = 8080
BROKER_URL = f"http://{BROKER_SERVICE}:{BROKER_PORT}"  # the claude container's ANTHROPIC_BASE_URL
ANTHROPIC_UPSTREAM = "https://api.anthropic.com"  # the broker's default upstream
GITHUB_UPSTREAM = "https://github.com"  # where the broker sends git's requests by default
BROKER_GIT_PREFIX = "/git/github.com"  # the broker's path for git's https://github.com/...
# The claude container's system gitconfig sends https://github.com/ here (`insteadOf`) when
# bridge.yaml lists repositories (`sidecar.broker.github`); the compose file sets GIT_BROKER_ENV.
BROKER_GIT_URL = f"{BROKER_URL}{BROKER_GIT_PREFIX}/"
GIT_BROKER_ENV = "SIDECAR_GIT_BROKER"

# -- paths in the image -------------------------------------------------------------------------

RUN_DIR = "/run/sidecar"  # root's: readiness, firewall state, the policy mount
POLICY_DIR = f"{RUN_DIR}/policy"  # POLICY_VOLUME, read-only in claude and the gate
POLICY_BRIDGE = f"{POLICY_DIR}/{CONFIG_NAME}"
FIREWALL_STATE_DIR = f"{RUN_DIR}/firewall"
READY_FILE = f"{RUN_DIR}/ready"  # the readiness marker
SEED_DIR = f"{RUN_DIR}/seed"  # credentials Claude Code's config is seeded from
GATE_CONFIG_DIR = "/etc/sidecar"  # the workspace's .sidecar/ in the gate (only compared)
ENGINE_SOCKET = "/var/run/docker.sock"  # in the gate: the engine's socket
WORKSPACE = "/workspace"  # where the project is mounted (bridge.yaml's default)
AGENT_USER = "claude"  # the user Claude Code and routed commands run as
AGENT_HOME = "/home/claude"
CLAUDE_CONFIG = f"{AGENT_HOME}/.claude"  # CONFIG_VOLUME's mount point
VENV = "/opt/sidecar"  # the package's environment
WRAPPER_DIR = f"{VENV}/wrappers"  # one link per routed command
CLAUDE_WRAPPER_DIR = "/usr/local/sidecar/bin"  # the `claude` wrapper
CLAUDE_BINARY = "/usr/local/bin/claude"
ENTRYPOINT = "/usr/local/sbin/sidecar-entrypoint"
HEALTH = "/usr/local/sbin/sidecar-health"
DNS_USER = "sidecar-dns"  # the firewall's DNS forwarder
# The broker's container: SECRETS_VOLUME at BROKER_SECRETS (read-only), one file per kind
# (owned by BROKER_UID, 0400; an empty volume: no credential), the extra CAs at BROKER_CA.
BROKER_UID = 65534  # `nobody`: owns nothing else in the image, and the volume's files
BROKER_SECRETS = f"{RUN_DIR}/broker-secrets"
BROKER_CA = f"{RUN_DIR}/broker-ca.pem"

# -- environment variables ----------------------------------------------------------------------

BRIDGE_CONFIG_ENV = "BRIDGE_CONFIG"  # the bridge.yaml the dispatcher routes by
CONFIG_DIR_ENV = "SIDECAR_CONFIG_DIR"  # the workspace's .sidecar/ as claude sees it
POLICY_DIR_ENV = "SIDECAR_POLICY_DIR"  # POLICY_DIR unless a hand-made setup moves it
WORKSPACE_ENV = "SIDECAR_WORKSPACE"
AUDIT_LOG_ENV = "SIDECAR_AUDIT_LOG"  # the dispatcher's audit log, when set
DEBUG_ENV = "SIDECAR_DEBUG"  # tracebacks instead of one line
READY_TIMEOUT_ENV = "SIDECAR_READY_TIMEOUT"  # how long `claude` waits for the start-up
# Carried by every exec the dispatcher starts (EXEC_TOKEN_HEX_DIGITS lowercase hex digits): the
# cleanup exec finds the command's processes by it, and the gate checks its shape.
EXEC_TOKEN_ENV = "SIDECAR_EXEC_TOKEN"  # noqa: S105 - a name, not a secret
EXEC_TOKEN_HEX_DIGITS = 32
# Passed into the claude container from the shell that starts the stack, only when set there.
PASSTHROUGH_ENV = ("CLAUDE_YOLO",)
# Only with the broker off (`sidecar.broker: false`): the real key goes into claude as before.
API_KEY_ENV = "ANTHROPIC_API_KEY"
OAUTH_TOKEN_ENV = "CLAUDE_CODE_OAUTH_TOKEN"  # noqa: S105 - a name, not a secret
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
