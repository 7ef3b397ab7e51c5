"""The gate fixtures, for the checks that ask a real gate."""

from gate.conftest import gate_factory

__all__ = ["gate_factory"]
