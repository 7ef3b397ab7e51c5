"""The gate's container healthcheck: healthy when it answers `/_ping` with an approved policy.

    python -m sidecar_gen.gate.health tcp://127.0.0.1:2375

Exit 0 when the gate answers 200 with `X-Sidecar-Policy: sha256:...`; else 1 with one line on
stderr saying why (no answer, or no usable approved policy: run `sidecar up` on the host).
Standard library and the runtime's client only: it runs every few seconds.
"""

from __future__ import annotations

from sidecar_gen.runtime import healthcheck

POLICY_HEADER = "x-sidecar-policy"


def check(address: str, timeout: float = 5.0) -> str | None:
    """None when the gate at `address` is healthy, else the reason."""
    answer = healthcheck.ask(address, "/_ping", "gate", timeout=timeout)
    if isinstance(answer, str):
        return answer
    policy = answer.headers.get(POLICY_HEADER, "")
    if not policy.startswith("sha256:"):
        return (f"the gate at {address} has no usable approved policy ({policy or 'no header'}):"
                " run `sidecar up` on the host")
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: one address argument."""
    return healthcheck.main(check, "gate", "sidecar_gen.gate.health", argv)


if __name__ == "__main__":
    raise SystemExit(main())
