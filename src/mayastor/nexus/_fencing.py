"""Fencing: a nexus holds an NVMe reservation on every child, and stops once superseded.

When the control plane moves a volume's target (its node died or was cut off), the old
nexus must never change the replicas again. So a nexus made with a reservation key is
a host of its own to its children (its host identifier comes from its uuid, so two
nexuses of one io-engine are two hosts): whenever it opens a child (create, add,
online; a rebuild writes only to children opened so) it registers its key there
(replacing another key of its own) and takes the reservation (Exclusive Access by
default, so the old holder can neither write nor read), preempting the old holder as
its policy says:

* `PreemptPolicy.ARG_KEY`: preempt the holder whose key is the given preempt key
  (when one is given); else only acquire, which conflicts while another host holds it;
* `PreemptPolicy.HOLDER`: read the report and preempt whatever other key holds it.

A nexus whose child answers an I/O with a reservation conflict has been superseded: it
is *fenced*; so is one whose nexus info the store refuses as superseded (the control
plane made a newer nexus while this one was cut off, and the child this one still
reaches, its local replica, could not be taken over yet). It stops I/O to all its
children (nothing is retired: the children are fine, they are just not ours; the nexus
info is left alone), its state is Fenced (final), its front-end I/O fails with the path
status Asymmetric Access Inaccessible (so that a host with another path retries there),
and its owner is told (`on_fenced`; the io-engine turns the published subsystem's ANA
state Inaccessible). On a clean shutdown it releases its reservations and unregisters
(best effort).

Children whose devices take no part in reservations (malloc, files) are not fenced.
"""

from __future__ import annotations

import enum
import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mayastor.bdev import (
    AcquireAction,
    BlockDevice,
    RegisterAction,
    ReleaseAction,
    ReservationStatus,
    ReservationType,
)
from mayastor.errors import (
    AnaInaccessible,
    DeviceError,
    InvalidArgument,
    ReservationConflict,
    Superseded,
)
from mayastor.nexus._child import NexusChild
from mayastor.nexus._core import as_device_error, log
from mayastor.nexus._gate import IoGate
from mayastor.nexus._nexus_state import NexusEvent, NexusState

_HOST_NAMESPACE = uuid_mod.UUID("5f4e3c2a-1b0d-4e8f-9a7b-6c5d4e3f2a1b")
_U64 = (1 << 64) - 1


def nexus_host_id(nexus_uuid: uuid_mod.UUID) -> uuid_mod.UUID:
    """The host identifier a nexus presents to its children: stable per nexus uuid."""
    return uuid_mod.uuid5(_HOST_NAMESPACE, str(nexus_uuid))


class PreemptPolicy(enum.Enum):
    """How a nexus takes a reservation another host holds (Mayastor's NexusNvmePreemption)."""

    ARG_KEY = "arg_key"  # preempt the holder whose key is the given preempt key
    HOLDER = "holder"  # preempt whichever other key holds it


@dataclass(frozen=True, slots=True)
class ReservationPolicy:
    """How a nexus reserves its children.

    Attributes:
        key: its reservation key, 1 to 2**64-1.
        preempt_key: ARG_KEY: the key of the holder to preempt (0: none).
        rtype: the reservation type it holds.
        preempt: `PreemptPolicy`.
    """

    key: int
    preempt_key: int = 0
    rtype: ReservationType = ReservationType.EXCLUSIVE_ACCESS
    preempt: PreemptPolicy = PreemptPolicy.ARG_KEY

    def __post_init__(self) -> None:
        if not isinstance(self.key, int) or not 0 < self.key <= _U64:
            raise InvalidArgument(f"reservation key {self.key!r} is not 1 to 2**64-1")
        if not isinstance(self.preempt_key, int) or not 0 <= self.preempt_key <= _U64:
            raise InvalidArgument(f"preempt key {self.preempt_key!r} is not 0 to 2**64-1")
        if self.preempt_key == self.key:
            raise InvalidArgument(f"preempt key {self.key:#x} is the nexus's own key")
        try:
            ReservationType(self.rtype)
        except ValueError:
            raise InvalidArgument(f"reservation type {self.rtype!r} is not 1 to 6") from None


async def claim(device: BlockDevice, policy: ReservationPolicy, what: str) -> None:
    """Register `policy.key` on `device` and hold its reservation as the policy says.

    A device that takes no part in reservations is left as it is.

    Raises:
        ReservationConflict: another host holds the reservation and the policy does not
            take it over (ARG_KEY with another key, or none).
        DeviceError: a reservation command failed otherwise.
    """
    if not device.supports_reservations:
        log.debug("%s takes no part in reservations; it is not fenced", what)
        return
    key = policy.key
    try:
        await device.reservation_register(RegisterAction.REGISTER, new_key=key)
    except ReservationConflict:
        # Registered with another key (an earlier nexus of ours): take ours.
        await device.reservation_register(RegisterAction.REPLACE, ignore_key=True, new_key=key)
    try:
        await _reserve(device, policy, what)
    except ReservationConflict:
        # Leave no registration behind where we hold nothing (one per failed attempt
        # would pile up); where we did take the reservation, keep it: releasing it
        # would let the host we preempted write again.
        try:
            if not _holds(device, await device.reservation_report()):
                await device.reservation_register(RegisterAction.UNREGISTER, current_key=key)
        except DeviceError as exc:
            log.info("%s: unregistering after a failed claim failed: %s", what, exc)
        raise


async def _reserve(device: BlockDevice, policy: ReservationPolicy, what: str) -> None:
    """Take the reservation as the policy says, once registered (see `claim`)."""
    key = policy.key
    if policy.preempt is PreemptPolicy.HOLDER:
        status = await device.reservation_report()
        others = [h for h in status.holders if h.hostid != _host_bytes(device)]
        if others:
            log.info("%s: preempting holder key %#x", what, others[0].rkey)
            await _preempt(device, policy, others[0].rkey)
    elif policy.preempt_key:
        try:
            await _preempt(device, policy, policy.preempt_key)
        except ReservationConflict:
            pass  # nobody has that key: acquire below, if nobody holds it either
    status = await device.reservation_report()
    if not status.holders:
        await device.reservation_acquire(AcquireAction.ACQUIRE, policy.rtype, current_key=key)
    elif _holds(device, status) and status.rtype != policy.rtype:
        await _preempt(device, policy, key)  # change the type we hold
    status = await device.reservation_report()
    if not _holds(device, status) or status.rtype != policy.rtype:
        held_by = ", ".join(f"{h.rkey:#x}" for h in status.holders) or "nobody"
        raise ReservationConflict(
            f"{what}: cannot hold a {policy.rtype.name.lower()} reservation with key "
            f"{key:#x}: it is held by key {held_by} (type {status.rtype}); preempt it "
            "(preempt key or the Holder policy)",
            device=device.name,
        )


async def unclaim(device: BlockDevice, policy: ReservationPolicy, what: str) -> None:
    """Release the reservation and unregister, best effort (errors are logged)."""
    if not device.supports_reservations or device.closed:
        return
    try:
        await device.reservation_release(
            ReleaseAction.RELEASE, policy.rtype, current_key=policy.key
        )
        await device.reservation_register(RegisterAction.UNREGISTER, current_key=policy.key)
    except DeviceError as exc:
        log.info("%s: releasing its reservation failed: %s", what, exc)


async def _preempt(device: BlockDevice, policy: ReservationPolicy, prkey: int) -> None:
    await device.reservation_acquire(
        AcquireAction.PREEMPT, policy.rtype, current_key=policy.key, preempt_key=prkey
    )


def _host_bytes(device: BlockDevice) -> bytes:
    host = device.reservation_host
    return host.bytes if host is not None else b""


def _holds(device: BlockDevice, status: ReservationStatus) -> bool:
    mine = _host_bytes(device)
    return any(h.hostid == mine for h in status.holders)


class Fencing(IoGate):
    """The fencing layer (see `_core` for the stack).

    Args:
        reservation: how the nexus reserves its children; None: it does not.
        host_id: its host identifier (default: from its uuid).

    Attributes:
        on_fenced: called once when the nexus is fenced (the io-engine turns its
            published subsystem's ANA state Inaccessible).
    """

    def __init__(
        self,
        *args: Any,
        reservation: ReservationPolicy | None = None,
        host_id: uuid_mod.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.reservation = reservation
        self.host_id = host_id or nexus_host_id(self.uuid)
        self.fenced: str | None = None
        """Why the nexus was fenced (the child and the conflict); None while it is not."""
        self.on_fenced: Callable[[], None] | None = None

    async def _claim(self, uri: str, device: BlockDevice) -> None:
        """Reserve a child just opened (nothing when the nexus reserves nothing)."""
        if self.reservation is not None:
            await claim(device, self.reservation, f"nexus {self.name!r}: child {uri!r}")

    async def _unclaim_children(self) -> None:
        policy = self.reservation
        if policy is None:
            return
        for child in self._children:
            if child.device is not None and child.closing is None:
                await unclaim(child.device, policy, f"nexus {self.name!r}: child {child.uri!r}")

    def _fence(self, child: NexusChild, error: Exception) -> None:
        """A child refused I/O with a reservation conflict: another nexus took over."""
        self._fence_for(f"child {child.uri} answered with a reservation conflict: {error}")

    def _superseded(self, error: Superseded) -> None:
        if self.state in (NexusState.SHUTTING_DOWN, NexusState.SHUTDOWN):
            return  # going away anyway: its info is simply left as it was
        self._fence_for(f"the store refused its nexus info: {error}")

    def _fence_for(self, reason: str) -> None:
        if self.fenced is not None:
            return
        self.fenced = reason
        log.error(
            "nexus %s is fenced: %s; it serves no more I/O (another nexus holds its children)",
            self.name,
            self.fenced,
        )
        if self.state.serves_io or self.state is NexusState.FAULTED:
            self._set_state(NexusEvent.SUPERSEDED)
        self._spawn(self._after_fence(), "fenced")

    async def _after_fence(self) -> None:
        for child in self._children:
            await self._stop_rebuild(child, "nexus fenced")
        if self.on_fenced is not None:
            self.on_fenced()

    async def _stop_rebuild(self, child: NexusChild, reason: str) -> None:
        raise NotImplementedError  # the rebuild layer's

    def _fenced_error(self) -> AnaInaccessible:
        return AnaInaccessible(
            f"nexus {self.name!r} is fenced ({self.fenced}): its volume is served through "
            "another path now",
            device=self.name,
        )

    def _not_serving(self) -> DeviceError:
        if self.fenced is not None:
            return self._fenced_error()
        return super()._not_serving()

    def _front_error(self, error: Exception) -> DeviceError:
        """The error a failed front-end I/O gets: the path status once fenced."""
        if self.fenced is not None:
            return self._fenced_error()
        return as_device_error(error, self.name)
