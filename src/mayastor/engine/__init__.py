"""The io-engine process: its registry of objects, gRPC services, start and stop.

Public surface: `IoEngine`, `EngineConfig`.
"""

from mayastor.engine.config import EngineConfig
from mayastor.engine.io_engine import IoEngine

__all__ = ["EngineConfig", "IoEngine"]
