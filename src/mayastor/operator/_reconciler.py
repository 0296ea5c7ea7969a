"""What to do about one DiskPool: compare its spec with the pool the REST API shows, take
one step, and say what the status should be and which Events to post.

Level-triggered: every call reads the pool afresh (``GET /v0/pools/{name}``) and acts
on what it finds, so a call may be repeated, interrupted or run after a restart of the
operator or of the core agent. Nothing is remembered between calls; the resource's
current status (passed in) is the only memory, used to keep sizes while a node is away
and to post a warning once per new reason rather than on every pass.

The pool's id is the resource's name. A pool of that name is this DiskPool's when it is
on the spec's node over the spec's disk, or when the status says it was created for it;
a pool that is someone else's is never changed or destroyed.

Knows the REST client, not kopf: `mayastor.operator.handlers` applies the `Outcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mayastor.operator._spec import DiskPoolSpec, SpecError, parse_spec
from mayastor.operator._status import CrState, PoolStatus, pool_status
from mayastor.restclient import (
    AsyncRestClient,
    Conflict,
    NotFound,
    RestError,
    RestUnreachable,
    ServiceUnavailable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolEvent:
    """A Kubernetes Event to post on the DiskPool."""

    type: str  # "Normal" or "Warning"
    reason: str  # CamelCase, e.g. "Created", "DeleteRefused"
    message: str


@dataclass
class Outcome:
    """The result of one pass.

    Attributes:
        status: the DiskPool's whole status as it should be now.
        events: Events to post, in order.
        done: for a deletion, whether the pool is gone (or not ours) and the finalizer
            may be removed.
        retry_after: seconds after which the step should be tried again (the deletion
            was refused or the control plane was away), or None.
    """

    status: dict[str, Any]
    events: list[PoolEvent] = field(default_factory=list)
    done: bool = False
    retry_after: float | None = None


def _describe(exc: RestError | RestUnreachable) -> str:
    if isinstance(exc, RestUnreachable):
        return str(exc)
    return f"{exc.kind}: {exc.message}"


def _transient(exc: RestError | RestUnreachable) -> bool:
    """The control plane (or the pool's node) is away: nothing is wrong with the spec."""
    return isinstance(exc, RestUnreachable | ServiceUnavailable)


def _pool_node(pool: Mapping[str, Any]) -> str | None:
    for part in ("spec", "state"):
        section = pool.get(part)
        if isinstance(section, Mapping) and isinstance(section.get("node"), str):
            return str(section["node"])
    return None


def _pool_disks(pool: Mapping[str, Any]) -> list[str]:
    for part in ("spec", "state"):
        section = pool.get(part)
        if isinstance(section, Mapping) and isinstance(section.get("disks"), list):
            return [str(d) for d in section["disks"]]
    return []


def _pool_labels(pool: Mapping[str, Any]) -> dict[str, str]:
    spec = pool.get("spec")
    labels = spec.get("labels") if isinstance(spec, Mapping) else None
    return {str(k): str(v) for k, v in (labels or {}).items()}


class DiskPoolReconciler:
    """Brings pools in line with DiskPools through the core agent's REST API.

    Args:
        rest: the core agent's REST API.
        retry_delay: seconds before a refused deletion, or one the control plane could
            not take, is tried again.
    """

    def __init__(self, rest: AsyncRestClient, *, retry_delay: float = 10.0) -> None:
        self.rest = rest
        self.retry_delay = retry_delay

    # ---------------------------------------------------------------- create / follow

    async def apply(
        self, name: str, spec: Mapping[str, Any] | None, status: Mapping[str, Any] | None
    ) -> Outcome:
        """Make the pool the spec asks for if it is missing; report what it is.

        Args:
            name: the DiskPool's name (the pool's id).
            spec: the DiskPool's spec, unchecked.
            status: the DiskPool's current status (empty for a new one).

        Returns:
            The status to write and the Events to post. Never raises for a bad spec or
            a refusal of the control plane: those are a ``message`` and a Warning.
        """
        previous = dict(status or {})
        try:
            wanted = parse_spec(name, spec)
        except SpecError as exc:
            return self._problem(previous, "InvalidSpec", f"the spec cannot be applied: {exc}")
        try:
            pool = await self._get_pool(name)
        except (RestError, RestUnreachable) as exc:
            return self._unreachable(previous, exc)
        if pool is None:
            return await self._create(wanted, previous)
        return await self._follow(wanted, pool, previous)

    async def _get_pool(self, name: str) -> dict[str, Any] | None:
        try:
            pool = await self.rest.get_pool(name)
        except NotFound:
            return None
        return dict(pool)

    async def _create(self, wanted: DiskPoolSpec, previous: dict[str, Any]) -> Outcome:
        try:
            pool = await self.rest.create_pool(
                wanted.node, wanted.name, [wanted.disk], labels=wanted.labels
            )
        except (RestError, RestUnreachable) as exc:
            if _transient(exc):
                return self._unreachable(previous, exc)
            reason = "CreateFailed"
            message = (
                f"cannot create pool {wanted.name} on node {wanted.node} over {wanted.disk}: "
                f"{_describe(exc)}"
            )
            return self._problem(previous, reason, message)
        log.info("pool %s created on node %s over %s", wanted.name, wanted.node, wanted.disk)
        status = {
            **previous,
            "cr_state": CrState.CREATED.value,
            **pool_status(pool, previous),
            "message": "",
        }
        event = PoolEvent(
            "Normal",
            "Created",
            f"pool {wanted.name} created on node {wanted.node} over {wanted.disk}",
        )
        return Outcome(status=status, events=[event])

    async def _follow(
        self, wanted: DiskPoolSpec, pool: dict[str, Any], previous: dict[str, Any]
    ) -> Outcome:
        node, disks = _pool_node(pool), _pool_disks(pool)
        created_here = previous.get("cr_state") == CrState.CREATED.value
        if node != wanted.node or disks != [wanted.disk]:
            message = (
                f"pool {wanted.name} exists on node {node} over {', '.join(disks) or 'no disk'}; "
                f"this DiskPool asks for node {wanted.node} over {wanted.disk}: a pool cannot "
                f"move (delete the DiskPool and create it again)"
            )
            outcome = self._problem(previous, "SpecConflict", message)
            if created_here:  # still ours: keep following it
                outcome.status.update(pool_status(pool, previous))
            return outcome
        if pool.get("spec") is None:
            # The io-engine has the pool but the control plane holds no spec for it (it
            # was made outside): the same PUT takes it over, as it imports a disk's pool.
            return await self._create(wanted, previous)
        events: list[PoolEvent] = []
        try:
            changed = await self._sync_labels(wanted, _pool_labels(pool))
        except (RestError, RestUnreachable) as exc:
            if _transient(exc):
                return self._unreachable(previous, exc)
            return self._problem(
                previous, "LabelsRefused", f"cannot set the pool's labels: {_describe(exc)}"
            )
        if changed:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(wanted.labels.items())) or "none"
            events.append(PoolEvent("Normal", "LabelsUpdated", f"pool labels now {shown}"))
        followed = pool_status(pool, previous)
        if not created_here:
            events.append(
                PoolEvent(
                    "Normal",
                    "Created",
                    f"pool {wanted.name} is on node {wanted.node} over {wanted.disk}",
                )
            )
        elif previous.get("pool_status") not in (None, followed["pool_status"]):
            kind = "Normal" if followed["pool_status"] == PoolStatus.ONLINE.value else "Warning"
            events.append(
                PoolEvent(
                    kind,
                    f"Pool{followed['pool_status']}",
                    f"pool {wanted.name} on node {wanted.node} is {followed['pool_status']} "
                    f"(was {previous.get('pool_status')})",
                )
            )
        status = {**previous, "cr_state": CrState.CREATED.value, **followed, "message": ""}
        return Outcome(status=status, events=events)

    async def _sync_labels(self, wanted: DiskPoolSpec, have: dict[str, str]) -> bool:
        """Make the pool's labels those of ``spec.topology.labelled``; whether any changed."""
        changed = False
        for key, value in sorted(wanted.labels.items()):
            if have.get(key) != value:
                await self.rest.label_pool(wanted.name, key, value, overwrite=True)
                changed = True
        for key in sorted(set(have) - set(wanted.labels)):
            await self.rest.unlabel_pool(wanted.name, key)
            changed = True
        return changed

    # ---------------------------------------------------------------- delete

    async def delete(
        self, name: str, spec: Mapping[str, Any] | None, status: Mapping[str, Any] | None
    ) -> Outcome:
        """Destroy the DiskPool's pool; refused (and to be retried) while replicas live on it.

        Returns:
            ``done`` once the pool is gone or was never this DiskPool's; otherwise the
            status says why and ``retry_after`` when to try again.
        """
        previous = dict(status or {})
        terminating = {**previous, "cr_state": CrState.TERMINATING.value}
        try:
            wanted: DiskPoolSpec | None = parse_spec(name, spec)
        except SpecError:
            wanted = None  # nothing was made from it, unless the status says otherwise
        try:
            pool = await self._get_pool(name)
        except (RestError, RestUnreachable) as exc:
            return self._retry(terminating, "DeletePending", exc)
        if pool is None:
            return Outcome(status=terminating, done=True)
        node = _pool_node(pool)
        ours = previous.get("cr_state") in (CrState.CREATED.value, CrState.TERMINATING.value) or (
            wanted is not None and node == wanted.node and _pool_disks(pool) == [wanted.disk]
        )
        if not ours:
            message = f"pool {name} on node {node} is not this DiskPool's; it is left as it is"
            log.info("%s", message)
            return Outcome(
                status=terminating, events=[PoolEvent("Normal", "Released", message)], done=True
            )
        try:
            await self.rest.delete_pool(name, node_id=node)
        except NotFound as exc:
            # 404 also answers for a node not registered yet (a core agent just
            # restarted): the pool is gone only when the REST API no longer shows it.
            try:
                still = await self._get_pool(name)
            except (RestError, RestUnreachable) as again:
                return self._retry(terminating, "DeletePending", again)
            if still is not None:
                return self._retry(terminating, "DeletePending", exc)
        except Conflict as exc:
            message = f"the pool is not destroyed: {exc.message}"
            outcome = self._problem(terminating, "DeleteRefused", message)
            outcome.status.update(pool_status(pool, previous))
            outcome.retry_after = self.retry_delay
            return outcome
        except (RestError, RestUnreachable) as exc:
            return self._retry(terminating, "DeletePending", exc)
        log.info("pool %s destroyed on node %s", name, node)
        event = PoolEvent("Normal", "Deleted", f"pool {name} destroyed on node {node}")
        return Outcome(status=terminating, events=[event], done=True)

    # ---------------------------------------------------------------- helpers

    def _problem(self, previous: dict[str, Any], reason: str, message: str) -> Outcome:
        """A status that says why, and a Warning the first time this reason is given."""
        status = dict(previous)
        status.setdefault("cr_state", CrState.CREATING.value)
        if status["cr_state"] == CrState.CREATING.value:
            status.update(pool_status(None, previous))
        status["message"] = message
        events = []
        if previous.get("message") != message:
            log.warning("%s", message)
            events.append(PoolEvent("Warning", reason, message))
        return Outcome(status=status, events=events)

    def _unreachable(self, previous: dict[str, Any], exc: RestError | RestUnreachable) -> Outcome:
        outcome = self._problem(
            previous,
            "ControlPlaneUnavailable",
            f"the control plane did not answer: {_describe(exc)}",
        )
        outcome.status.update(pool_status(None, previous))
        return outcome

    def _retry(
        self, previous: dict[str, Any], reason: str, exc: RestError | RestUnreachable
    ) -> Outcome:
        outcome = self._problem(
            previous, reason, f"the pool is not destroyed yet: {_describe(exc)}"
        )
        outcome.retry_after = self.retry_delay
        return outcome
