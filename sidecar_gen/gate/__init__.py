"""The Docker API gate: a least-privilege proxy between the dispatcher and the engine.

`run_gate(GateOptions(...))` is the one entry point (the `sidecar proxy` command calls it).
The policy (`policy`), path canonicalization (`paths`), exec registry (`registry`), decision log
(`audit`) and upstream transport (`upstream`) are separate modules, each testable alone.
"""

from __future__ import annotations

from sidecar_gen.gate.server import Gate, GateOptions, run_gate

__all__ = ["Gate", "GateOptions", "run_gate"]
