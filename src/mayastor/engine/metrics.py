"""`/metrics`: the io-engine's pools, replicas and volumes for Prometheus.

Mayastor's names: per pool ``diskpool_total_size_bytes``, ``diskpool_used_size_bytes``,
``diskpool_committed_size_bytes``, ``diskpool_status`` (0 Unknown, 1 Online, 2
Degraded, 3 Faulted), and for pools (their disks), replicas and volumes (nexuses) the
I/O counters ``<kind>_num_read_ops``, ``<kind>_bytes_read``, ``<kind>_num_write_ops``,
``<kind>_bytes_written``, ``<kind>_read_latency_us`` and ``<kind>_write_latency_us``
(the latencies summed over the operations, in microseconds). Each series carries the
``node`` and the object's ``name``. Values are read from the io-engine's objects at
each scrape, in the event loop, so they are consistent with its gRPC API.

The HTTP side is a few lines on asyncio (GET /metrics; anything else 404 or 405): the
io-engine runs no web framework for one page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mayastor.bdev import IoStats
from mayastor.engine.nexuses import Nexuses
from mayastor.engine.registry import Registry
from mayastor.errors import Unavailable
from mayastor.lvs import PoolState

log = logging.getLogger(__name__)

POOL_STATUS = {PoolState.ONLINE: 1, PoolState.DEGRADED: 2, PoolState.FAULTED: 3}
"""diskpool_status values (Mayastor's: 0 Unknown, 1 Online, 2 Degraded, 3 Faulted)."""


class EngineCollector(Collector):
    """Metric families of one io-engine, made at each scrape."""

    def __init__(self, node: str, registry: Registry, nexuses: Nexuses) -> None:
        self.node = node
        self.registry = registry
        self.nexuses = nexuses

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["node", "name"]
        gauges = {
            "total_size_bytes": GaugeMetricFamily(
                "diskpool_total_size_bytes", "total size of the pool in bytes", labels=labels
            ),
            "used_size_bytes": GaugeMetricFamily(
                "diskpool_used_size_bytes", "used size of the pool in bytes", labels=labels
            ),
            "committed_size_bytes": GaugeMetricFamily(
                "diskpool_committed_size_bytes",
                "sum of the sizes of the pool's replicas, in bytes",
                labels=labels,
            ),
            "status": GaugeMetricFamily(
                "diskpool_status",
                "status of the pool: 0 Unknown, 1 Online, 2 Degraded, 3 Faulted",
                labels=labels,
            ),
        }
        pools = sorted(self.registry.pools.values(), key=lambda p: p.name)
        for pool in pools:
            key = [self.node, pool.name]
            gauges["total_size_bytes"].add_metric(key, pool.capacity)
            gauges["used_size_bytes"].add_metric(key, pool.used)
            gauges["committed_size_bytes"].add_metric(key, pool.committed)
            gauges["status"].add_metric(key, POOL_STATUS.get(pool.state, 0))
        yield from gauges.values()
        yield from self._io("diskpool", "pool disk", [(p.name, p.base.stats) for p in pools])
        replicas = sorted(self.registry.replicas(), key=lambda r: (r.pool.name, r.name))
        yield from self._io("replica", "replica", [(str(r.uuid), r.stats) for r in replicas])
        volumes = self.nexuses.by_name()
        yield from self._io("volume", "volume target (nexus)", [(n.name, n.stats) for n in volumes])

    def _io(
        self, prefix: str, what: str, objects: list[tuple[str, IoStats]]
    ) -> Iterator[CounterMetricFamily]:
        labels = ["node", "name"]
        families: list[tuple[str, str, Callable[[IoStats], int]]] = [
            ("num_read_ops", f"reads of the {what}", lambda s: s.num_read_ops),
            ("bytes_read", f"bytes read from the {what}", lambda s: s.bytes_read),
            ("num_write_ops", f"writes to the {what}", lambda s: s.num_write_ops),
            ("bytes_written", f"bytes written to the {what}", lambda s: s.bytes_written),
            (
                "read_latency_us",
                f"time spent in reads of the {what}, microseconds",
                lambda s: s.read_latency_ns // 1000,
            ),
            (
                "write_latency_us",
                f"time spent in writes to the {what}, microseconds",
                lambda s: s.write_latency_ns // 1000,
            ),
        ]
        for suffix, text, value in families:
            family = CounterMetricFamily(f"{prefix}_{suffix}", text, labels=labels)
            for name, stats in objects:
                family.add_metric([self.node, name], value(stats))
            yield family


class MetricsServer:
    """Serves GET /metrics for `collector` on ``host:port``.

    Raises (from `start`):
        Unavailable: the port cannot be bound.
    """

    def __init__(self, collector: Collector, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise Unavailable(
                f"cannot serve metrics on {self.host}:{self.port} ({exc}); see --metrics-endpoint"
            ) from exc
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if path != "/metrics":
                status, body, kind = "404 Not Found", b"not found: try /metrics\n", "text/plain"
            elif method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            else:
                status, body, kind = "200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n"
            ).encode()
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, OSError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
