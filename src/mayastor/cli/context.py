"""What every command gets: stubs for the io-engine's services and the printer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc

from mayastor.api.v1 import (
    bdev_pb2_grpc,
    host_pb2_grpc,
    nexus_pb2_grpc,
    pool_pb2_grpc,
    replica_pb2_grpc,
    stats_pb2_grpc,
)
from mayastor.cli.output import Printer
from mayastor.credentials import grpc_tls
from mayastor.credentials.grpc_tls import GrpcTls

DEFAULT_BIND = "127.0.0.1:10124"


class CommandError(Exception):
    """A command cannot go on; the message is for the operator."""


def normalise_bind(text: str) -> str:
    """``HOST:PORT`` from ``HOST:PORT``, ``HOST`` or ``http://HOST:PORT``."""
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip("/")
    if ":" not in text.rsplit("]", 1)[-1]:
        text += ":10124"
    return text


@dataclass
class Context:
    bind: str
    printer: Printer
    timeout: float = 60.0
    tls: GrpcTls | None = None
    _channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc_tls.sync_channel(self.bind, self.tls)
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def call(self, stub_method: Any, request: Any) -> Any:
        """Call one RPC with the context's deadline."""
        return stub_method(request, timeout=self.timeout, wait_for_ready=False)

    @property
    def pools(self) -> pool_pb2_grpc.PoolRpcStub:
        return pool_pb2_grpc.PoolRpcStub(self.channel)

    @property
    def replicas(self) -> replica_pb2_grpc.ReplicaRpcStub:
        return replica_pb2_grpc.ReplicaRpcStub(self.channel)

    @property
    def bdevs(self) -> bdev_pb2_grpc.BdevRpcStub:
        return bdev_pb2_grpc.BdevRpcStub(self.channel)

    @property
    def host(self) -> host_pb2_grpc.HostRpcStub:
        return host_pb2_grpc.HostRpcStub(self.channel)

    @property
    def nexus(self) -> nexus_pb2_grpc.NexusRpcStub:
        return nexus_pb2_grpc.NexusRpcStub(self.channel)

    @property
    def stats(self) -> stats_pb2_grpc.StatsRpcStub:
        return stats_pb2_grpc.StatsRpcStub(self.channel)
