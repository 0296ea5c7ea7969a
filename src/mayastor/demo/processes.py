"""Moved to `mayastor.cluster.processes`; this name stays until the benchmarks follow."""

from mayastor.cluster.processes import EngineProcess, free_port

__all__ = ["EngineProcess", "free_port"]
