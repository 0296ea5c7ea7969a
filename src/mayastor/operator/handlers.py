"""The DiskPool operator's kopf handlers: when `DiskPoolReconciler` runs, and how its
`Outcome` reaches Kubernetes (a status patch, Events, a kept finalizer).

- A timer per DiskPool runs `DiskPoolReconciler.apply` at once when the operator first
  sees it (a new DiskPool, or every DiskPool after a restart) and every ``interval``
  seconds after, so the status follows the pool and a spec that could not be applied
  (the disk was missing) is tried again; a change of ``spec`` runs it at once too.
- Deletion runs `DiskPoolReconciler.delete` behind the finalizer; while the pool cannot
  be destroyed (replicas live on it, the control plane is away) the handler raises
  `kopf.TemporaryError`, so kopf keeps the finalizer and calls again after the delay.

Passes for one DiskPool run one at a time (a lock per uid). What was last written is
kept per uid only so that a pass that starts from an older copy of the resource does not
post the same Event twice; the resource itself stays the record. Every exception a
handler lets through is retried by kopf after ``retry_delay``: no bad spec or refusal
stops the operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import kopf

from mayastor.operator._reconciler import DiskPoolReconciler, Outcome
from mayastor.operator._spec import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)

RESOURCE = (API_GROUP, API_VERSION, PLURAL)


def _status_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` that differ from `current` (a merge patch of the status)."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}


class _Publisher:
    """Applies outcomes: status through kopf's patch, Events through kopf.event."""

    def __init__(self) -> None:
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.written: dict[str, dict[str, Any]] = {}

    def current(self, uid: str, status: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**(status or {}), **self.written.get(uid, {})}

    def publish(self, outcome: Outcome, *, body: kopf.Body, patch: kopf.Patch, uid: str) -> None:
        for key, value in _status_patch(dict(body.status), outcome.status).items():
            patch.status[key] = value
        self.written[uid] = dict(outcome.status)
        for event in outcome.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)

    def forget(self, uid: str) -> None:
        self.written.pop(uid, None)
        self.locks.pop(uid, None)


def register(
    registry: kopf.OperatorRegistry,
    reconciler: DiskPoolReconciler,
    *,
    interval: float,
    retry_delay: float,
) -> None:
    """Register the DiskPool handlers in `registry`.

    Args:
        reconciler: what the handlers run.
        interval: seconds between two passes over one DiskPool.
        retry_delay: seconds before kopf retries a handler that raised.
    """
    publisher = _Publisher()

    async def apply(body: kopf.Body, patch: kopf.Patch, uid: str, name: str) -> None:
        async with publisher.locks[uid]:
            if body.metadata.get("deletionTimestamp"):
                return  # the deletion handler has it now
            current = publisher.current(uid, body.status)
            outcome = await reconciler.apply(name, dict(body.spec), current)
            publisher.publish(outcome, body=body, patch=patch, uid=uid)

    @kopf.timer(*RESOURCE, interval=interval, backoff=retry_delay, registry=registry)
    async def follow(body: kopf.Body, patch: kopf.Patch, uid: str, name: str, **_: Any) -> None:
        """Create the pool if it is missing; make the status follow it."""
        await apply(body, patch, uid, name)

    @kopf.on.update(*RESOURCE, field="spec", backoff=retry_delay, registry=registry)
    async def spec_changed(
        body: kopf.Body, patch: kopf.Patch, uid: str, name: str, **_: Any
    ) -> None:
        """Apply a changed spec without waiting for the timer."""
        await apply(body, patch, uid, name)

    @kopf.on.delete(*RESOURCE, backoff=retry_delay, registry=registry)
    async def delete(body: kopf.Body, patch: kopf.Patch, uid: str, name: str, **_: Any) -> None:
        """Destroy the pool; keep the finalizer (and say why) while that is refused."""
        async with publisher.locks[uid]:
            current = publisher.current(uid, body.status)
            outcome = await reconciler.delete(name, dict(body.spec), current)
            publisher.publish(outcome, body=body, patch=patch, uid=uid)
        if not outcome.done:
            raise kopf.TemporaryError(
                outcome.status.get("message") or "the pool is not destroyed yet",
                delay=outcome.retry_after if outcome.retry_after is not None else retry_delay,
            )
        publisher.forget(uid)
