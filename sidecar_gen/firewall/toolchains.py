"""Which package-registry domains each toolchain needs (the egress allowlist's presets)."""

from __future__ import annotations

from collections.abc import Iterable

# Domains Claude Code itself needs (API, login, telemetry) and the npm registry it updates from,
# when it talks to them itself: only with the credential broker off (`sidecar.broker: false`).
# With the broker on, Claude Code reaches the API through the broker, telemetry and updates
# are off, and none of these hosts (each accepts uploads) is open to the agent.
DEFAULT_DOMAINS: tuple[tuple[str, str], ...] = (
    ("api.anthropic.com", "Claude API"),
    ("console.anthropic.com", "Claude login"),
    ("claude.ai", "Claude login"),
    ("statsig.anthropic.com", "Claude Code telemetry"),
    ("statsig.com", "Claude Code telemetry"),
    ("sentry.io", "Claude Code error reports"),
    ("registry.npmjs.org", "npm registry (Claude Code updates)"),
)

# Toolchain preset -> (commands that select it, domains it needs).
PRESETS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "npm": (frozenset({"node", "npm", "npx", "yarn", "pnpm", "bun"}),
            ("registry.npmjs.org", "registry.yarnpkg.com")),
    "pypi": (frozenset({"python", "pip", "pytest", "uv", "poetry", "pipenv"}),
             ("pypi.org", "files.pythonhosted.org")),
    "packagist": (frozenset({"php", "composer"}),
                  ("repo.packagist.org", "packagist.org")),
    "go": (frozenset({"go", "gofmt"}), ("proxy.golang.org", "sum.golang.org")),
    "crates": (frozenset({"cargo", "rustc", "rustup"}),
               ("crates.io", "index.crates.io", "static.crates.io")),
    "rubygems": (frozenset({"ruby", "bundle", "gem", "rails", "rake"}),
                 ("rubygems.org", "index.rubygems.org")),
    "maven": (frozenset({"mvn", "gradle", "java"}),
              ("repo.maven.apache.org", "repo1.maven.org")),
    "nuget": (frozenset({"dotnet"}), ("api.nuget.org",)),
    "hex": (frozenset({"mix", "elixir"}), ("hex.pm", "repo.hex.pm")),
    "deno": (frozenset({"deno"}), ("deno.land", "jsr.io")),
}


def presets_for(commands: Iterable[str]) -> list[str]:
    """Names of the toolchain presets the routed commands need, in a stable order."""
    names = set(commands)
    return [preset for preset, (selectors, _) in PRESETS.items() if selectors & names]


def allowed_domains(commands: Iterable[str], extra: Iterable[str] = (), *,
                    broker: bool = True) -> list[tuple[str, str]]:
    """(domain, why) pairs: defaults (only without the broker), then presets, then the user's
    extras; no duplicates."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def add(domain: str, why: str) -> None:
        if domain not in seen:
            seen.add(domain)
            out.append((domain, why))

    for domain, why in () if broker else DEFAULT_DOMAINS:
        add(domain, f"default: {why}")
    for preset in presets_for(commands):
        for domain in PRESETS[preset][1]:
            add(domain, f"preset {preset}")
    for domain in extra:
        add(domain, "sidecar.firewall.domains in bridge.yaml")
    return out
