"""NVMe reservations of one namespace: the state, the rules, and the cell that holds them.

A namespace (a replica, a published nexus, a malloc disk) has registrants (hosts, by
their 128-bit host identifier, each with a 64-bit key), maybe a reservation (its type
and holder) and a generation counter. The pure part of this module is that state
(`ReservationState`, immutable) and what the four commands do to it (`register`,
`acquire`, `release`: each returns an `Outcome`, the status to answer and the next
state; `report` describes it), with the access rules of NVMe Base 1.4 (Figure 418:
which commands the holder, other registrants and other hosts may run under each
type) as the table `ACCESS`.

`ReservationCell` is the live state of one namespace, shared by everyone who reaches
it: the NVMe/TCP target checks every I/O command of its hosts against it, an
in-process handle (``bdev:///``) the I/O of its user. Changes go through the cell one
at a time: the next state is made durable first (a replica persists it in its pool),
then it takes effect, then the cell waits until the hosts that lost access have no
I/O in flight any more (so a preempted host's writes cannot land after the command
that preempted it completed), and only then does the command complete.

Where the state lives: a device that keeps it itself (an lvol) exposes its cell as
`BlockDevice.reservations`; for other devices the target keeps an in-memory cell per
subsystem. This module sits in the block-device layer because the pool (below the
target) persists it and the in-process handle checks against it.

Decisions the spec leaves open:

* a key of 0 cannot be registered (Invalid Field), so that PRKEY 0 keeps its meaning
  for the all-registrants types;
* at most `MAX_REGISTRANTS` hosts register on a namespace; more get Internal Error;
* Preempt and Preempt-and-Abort behave alike: both wait for the preempted hosts' I/O
  in flight to end before completing (nothing is aborted, so nothing is lost either);
* Release by a registrant that does not hold the reservation succeeds and changes
  nothing; Release of a type other than the one held is Invalid Field.
"""

from __future__ import annotations

import asyncio
import enum
import uuid as uuid_mod
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from mayastor.nvmf.spec import (
    AcquireAction,
    ChangePtpl,
    GenericStatus,
    IoOpcode,
    NvmeStatus,
    RegisterAction,
    RegisteredController,
    ReleaseAction,
    ReservationStatus,
    ReservationType,
    StatusCodeType,
)

HostId = uuid_mod.UUID
"""A host identifier: the HOSTID of the host's Fabrics Connect data."""
MAX_REGISTRANTS = 16
"""Registrants one namespace keeps; a 17th registration gets Internal Error."""
DYNAMIC_CNTLID = 0xFFFF
"""CNTLID reported for every registrant: controllers come and go (dynamic model)."""

_G = StatusCodeType.GENERIC
OK = NvmeStatus(_G, GenericStatus.SUCCESS)
RESERVATION_CONFLICT = NvmeStatus(_G, GenericStatus.RESERVATION_CONFLICT, dnr=True)
INVALID_FIELD = NvmeStatus(_G, GenericStatus.INVALID_FIELD, dnr=True)
TOO_MANY_REGISTRANTS = NvmeStatus(_G, GenericStatus.INTERNAL_ERROR, dnr=True)
_GENERATION_MASK = 0xFFFF_FFFF


class Role(enum.Enum):
    """What a host is to the reservation of a namespace."""

    HOLDER = "holder"  # holds the reservation (every registrant, for types 5 and 6)
    REGISTRANT = "registrant"  # registered, does not hold it
    OTHER = "other"  # not registered


class Access(enum.Flag):
    """What a command does to the namespace's data."""

    NONE = 0
    READ = enum.auto()  # Read, Compare
    WRITE = enum.auto()  # Write, Write Zeroes, Dataset Management, Write Uncorrectable, Flush


_RW = Access.READ | Access.WRITE
_T = ReservationType
ACCESS: Mapping[tuple[ReservationType, Role], Access] = {
    (_T.WRITE_EXCLUSIVE, Role.HOLDER): _RW,
    (_T.WRITE_EXCLUSIVE, Role.REGISTRANT): Access.READ,
    (_T.WRITE_EXCLUSIVE, Role.OTHER): Access.READ,
    (_T.EXCLUSIVE_ACCESS, Role.HOLDER): _RW,
    (_T.EXCLUSIVE_ACCESS, Role.REGISTRANT): Access.NONE,
    (_T.EXCLUSIVE_ACCESS, Role.OTHER): Access.NONE,
    (_T.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, Role.HOLDER): _RW,
    (_T.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, Role.REGISTRANT): _RW,
    (_T.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, Role.OTHER): Access.READ,
    (_T.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, Role.HOLDER): _RW,
    (_T.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, Role.REGISTRANT): _RW,
    (_T.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, Role.OTHER): Access.NONE,
    (_T.WRITE_EXCLUSIVE_ALL_REGISTRANTS, Role.HOLDER): _RW,
    (_T.WRITE_EXCLUSIVE_ALL_REGISTRANTS, Role.OTHER): Access.READ,
    (_T.EXCLUSIVE_ACCESS_ALL_REGISTRANTS, Role.HOLDER): _RW,
    (_T.EXCLUSIVE_ACCESS_ALL_REGISTRANTS, Role.OTHER): Access.NONE,
}
"""(reservation type, role of the host) -> what it may do (NVMe Base 1.4 Figure 418).
Under the all-registrants types every registrant is a holder, so those have no
REGISTRANT row."""

IO_ACCESS: Mapping[int, Access] = {
    IoOpcode.READ: Access.READ,
    IoOpcode.COMPARE: Access.READ,
    IoOpcode.WRITE: Access.WRITE,
    IoOpcode.WRITE_ZEROES: Access.WRITE,
    IoOpcode.DATASET_MANAGEMENT: Access.WRITE,
    IoOpcode.WRITE_UNCORRECTABLE: Access.WRITE,
    IoOpcode.FLUSH: Access.WRITE,
}
"""I/O opcode -> what it needs; commands not listed (the reservation commands) are not
subject to the table: they check what they need themselves."""


@dataclass(frozen=True, slots=True)
class Registrant:
    """A registered host and its reservation key."""

    hostid: HostId
    key: int


@dataclass(frozen=True, slots=True)
class ReservationState:
    """The reservation state of a namespace (immutable; the commands make new ones).

    Invariants: `rtype` is 0 exactly when `holder` is None; the holder is a
    registrant; host identifiers are unique; keys are 1 to 2**64-1.

    Attributes:
        generation: GEN: 32-bit counter, bumped by every successful Register,
            Preempt and Clear.
        rtype: the reservation held (`ReservationType` value), 0 when none is.
        holder: the host that holds it; under the all-registrants types every
            registrant holds it, and this is one of them.
        registrants: the registered hosts, in registration order.
        ptpl: Persist Through Power Loss: the state survives a restart.
    """

    generation: int = 0
    rtype: int = 0
    holder: HostId | None = None
    registrants: tuple[Registrant, ...] = ()
    ptpl: bool = False

    def key_of(self, host: HostId) -> int | None:
        """The key `host` registered, or None when it is not a registrant."""
        for reg in self.registrants:
            if reg.hostid == host:
                return reg.key
        return None

    def role(self, host: HostId) -> Role:
        """What `host` is to the reservation."""
        if self.key_of(host) is None:
            return Role.OTHER
        if self.holder == host or (self.rtype and ReservationType(self.rtype).all_registrants):
            return Role.HOLDER
        return Role.REGISTRANT

    def allows(self, host: HostId, need: Access) -> bool:
        """True when `host` may run a command that needs `need`."""
        if not self.rtype or not need:
            return True
        return need in ACCESS[ReservationType(self.rtype), self.role(host)]

    def holder_key(self) -> int | None:
        """The key of the holder, or None when no reservation is held."""
        return None if self.holder is None else self.key_of(self.holder)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command does: the status to answer and the state it leaves."""

    status: NvmeStatus
    state: ReservationState


def _next_generation(state: ReservationState) -> int:
    return (state.generation + 1) & _GENERATION_MASK


def _unregister(state: ReservationState, hosts: set[HostId]) -> ReservationState:
    """Remove the registrations of `hosts`; the reservation goes with its holder, except
    under the all-registrants types while a registrant is left."""
    kept = tuple(r for r in state.registrants if r.hostid not in hosts)
    rtype, holder = state.rtype, state.holder
    if holder in hosts:
        if rtype and ReservationType(rtype).all_registrants and kept:
            holder = kept[0].hostid
        else:
            rtype, holder = 0, None
    return replace(state, registrants=kept, rtype=rtype, holder=holder)


def _failed(state: ReservationState, status: NvmeStatus) -> Outcome:
    return Outcome(status, state)


# ------------------------------------------------------------------ Register


def register(
    state: ReservationState,
    host: HostId,
    rrega: int,
    *,
    crkey: int = 0,
    nrkey: int = 0,
    iekey: bool = False,
    cptpl: int = ChangePtpl.NO_CHANGE,
    persistent: bool = False,
) -> Outcome:
    """Reservation Register by `host`.

    Args:
        state: the namespace's state.
        host: the host identifier of the controller that sent it.
        rrega: the action (`RegisterAction`); others are Invalid Field.
        crkey, nrkey: the command's keys.
        iekey: skip the CRKEY check (Unregister, Replace).
        cptpl: `ChangePtpl`; SET on a namespace that cannot persist is Invalid Field.
        persistent: the namespace can persist its state through a power loss.
    """
    if cptpl == ChangePtpl.RESERVED or (cptpl == ChangePtpl.SET and not persistent):
        return _failed(state, INVALID_FIELD)
    handler = _REGISTER.get(rrega)
    if handler is None:
        return _failed(state, INVALID_FIELD)
    outcome = handler(state, host, crkey, nrkey, iekey)
    if outcome.status != OK:
        return outcome
    new = outcome.state
    if cptpl == ChangePtpl.SET:
        new = replace(new, ptpl=True)
    elif cptpl == ChangePtpl.CLEAR:
        new = replace(new, ptpl=False)
    return Outcome(OK, replace(new, generation=_next_generation(state)))


def _register_key(
    state: ReservationState, host: HostId, crkey: int, nrkey: int, iekey: bool
) -> Outcome:
    current = state.key_of(host)
    if current is not None:
        # Registering the key a host already has is not an error; another key is.
        return Outcome(OK, state) if current == nrkey else _failed(state, RESERVATION_CONFLICT)
    if not nrkey:
        return _failed(state, INVALID_FIELD)
    if len(state.registrants) >= MAX_REGISTRANTS:
        return _failed(state, TOO_MANY_REGISTRANTS)
    return Outcome(OK, replace(state, registrants=(*state.registrants, Registrant(host, nrkey))))


def _unregister_key(
    state: ReservationState, host: HostId, crkey: int, nrkey: int, iekey: bool
) -> Outcome:
    current = state.key_of(host)
    if current is None or (not iekey and current != crkey):
        return _failed(state, RESERVATION_CONFLICT)
    return Outcome(OK, _unregister(state, {host}))


def _replace_key(
    state: ReservationState, host: HostId, crkey: int, nrkey: int, iekey: bool
) -> Outcome:
    current = state.key_of(host)
    if current is None or (not iekey and current != crkey):
        return _failed(state, RESERVATION_CONFLICT)
    if not nrkey:
        return _failed(state, INVALID_FIELD)
    registrants = tuple(
        Registrant(host, nrkey) if r.hostid == host else r for r in state.registrants
    )
    return Outcome(OK, replace(state, registrants=registrants))


_RegisterStep = Callable[[ReservationState, HostId, int, int, bool], Outcome]
_REGISTER: Mapping[int, _RegisterStep] = {
    RegisterAction.REGISTER: _register_key,
    RegisterAction.UNREGISTER: _unregister_key,
    RegisterAction.REPLACE: _replace_key,
}


# ------------------------------------------------------------------ Acquire


def acquire(
    state: ReservationState,
    host: HostId,
    racqa: int,
    rtype: int,
    *,
    crkey: int = 0,
    prkey: int = 0,
    iekey: bool = False,
) -> Outcome:
    """Reservation Acquire by `host`: Acquire, Preempt or Preempt and Abort.

    Args:
        state: the namespace's state.
        host: the host identifier of the controller that sent it.
        racqa: the action (`AcquireAction`); others are Invalid Field.
        rtype: the type to hold (`ReservationType`); others are Invalid Field.
        crkey: must be the host's registered key (else Reservation Conflict).
        prkey: Preempt: the key to take the reservation from, or to unregister.
        iekey: refused (Invalid Field), as NVMe 1.3 and later require.
    """
    if iekey or rtype not in _TYPES:
        return _failed(state, INVALID_FIELD)
    handler = _ACQUIRE.get(racqa)
    if handler is None:
        return _failed(state, INVALID_FIELD)
    if state.key_of(host) != crkey or not crkey:
        return _failed(state, RESERVATION_CONFLICT)
    return handler(state, host, ReservationType(rtype), prkey)


_TYPES = frozenset(int(t) for t in ReservationType)


def _acquire(state: ReservationState, host: HostId, rtype: ReservationType, prkey: int) -> Outcome:
    if not state.rtype:
        return Outcome(OK, replace(state, rtype=int(rtype), holder=host))
    if state.role(host) is Role.HOLDER and state.rtype == rtype:
        return Outcome(OK, state)  # acquiring what it holds is not an error
    return _failed(state, RESERVATION_CONFLICT)


def _preempt(state: ReservationState, host: HostId, rtype: ReservationType, prkey: int) -> Outcome:
    matching = {r.hostid for r in state.registrants if r.key == prkey and prkey}
    if not state.rtype:
        # No reservation: only unregister the hosts registered with PRKEY.
        if not matching:
            return _failed(state, RESERVATION_CONFLICT)
        return _preempted(_unregister(state, matching))
    if ReservationType(state.rtype).all_registrants:
        if not prkey:
            others = {r.hostid for r in state.registrants if r.hostid != host}
            new = replace(_unregister(state, others), rtype=int(rtype), holder=host)
            return _preempted(new)
        if not matching:
            return _failed(state, RESERVATION_CONFLICT)
        return _preempted(_unregister(state, matching))
    if prkey == state.holder_key():
        # Take the reservation: the holder (if not us) and every other host with its
        # key are unregistered, and we hold a reservation of the new type.
        new = _unregister(replace(state, rtype=0, holder=None), matching - {host})
        return _preempted(replace(new, rtype=int(rtype), holder=host))
    if not prkey:
        return _failed(state, INVALID_FIELD)
    if not matching:
        return _failed(state, RESERVATION_CONFLICT)
    return _preempted(_unregister(state, matching))


def _preempted(new: ReservationState) -> Outcome:
    return Outcome(OK, replace(new, generation=(new.generation + 1) & _GENERATION_MASK))


_AcquireStep = Callable[[ReservationState, HostId, ReservationType, int], Outcome]
_ACQUIRE: Mapping[int, _AcquireStep] = {
    AcquireAction.ACQUIRE: _acquire,
    AcquireAction.PREEMPT: _preempt,
    AcquireAction.PREEMPT_AND_ABORT: _preempt,
}


# ------------------------------------------------------------------ Release


def release(
    state: ReservationState,
    host: HostId,
    rrela: int,
    rtype: int,
    *,
    crkey: int = 0,
    iekey: bool = False,
) -> Outcome:
    """Reservation Release by `host`: Release or Clear.

    Args:
        state: the namespace's state.
        host: the host identifier of the controller that sent it.
        rrela: the action (`ReleaseAction`); others are Invalid Field.
        rtype: Release: the type held (another one is Invalid Field).
        crkey: must be the host's registered key (else Reservation Conflict).
        iekey: refused (Invalid Field), as NVMe 1.3 and later require.
    """
    if iekey or rrela not in _RELEASE_ACTIONS:
        return _failed(state, INVALID_FIELD)
    if state.key_of(host) != crkey or not crkey:
        return _failed(state, RESERVATION_CONFLICT)
    if rrela == ReleaseAction.CLEAR:
        cleared = replace(state, rtype=0, holder=None, registrants=())
        return Outcome(OK, replace(cleared, generation=_next_generation(state)))
    if state.role(host) is not Role.HOLDER:
        return Outcome(OK, state)  # nothing of ours to release
    if rtype != state.rtype:
        return _failed(state, INVALID_FIELD)
    return Outcome(OK, replace(state, rtype=0, holder=None))


_RELEASE_ACTIONS = frozenset(int(a) for a in ReleaseAction)


# ------------------------------------------------------------------ Report


def report(state: ReservationState) -> ReservationStatus:
    """The Reservation Status data structure (extended: 128-bit host identifiers)."""
    return ReservationStatus(
        generation=state.generation,
        rtype=state.rtype,
        ptpls=state.ptpl,
        registrants=tuple(
            RegisteredController(
                DYNAMIC_CNTLID, state.role(r.hostid) is Role.HOLDER, r.hostid.bytes, r.key
            )
            for r in state.registrants
        ),
    )


# ------------------------------------------------------------------ the cell


class Accessor(Protocol):
    """Something that reaches the namespace as a host: a target controller, an
    in-process handle. The cell waits for its I/O when a change takes access away."""

    @property
    def hostid(self) -> HostId:
        """The host identifier its commands are checked as."""
        ...

    async def quiesce(self) -> None:
        """Return once the I/O it has in flight now has ended."""
        ...


Persist = Callable[[ReservationState], Awaitable[None]]
"""Makes a state durable (a replica writes it to its pool); raises when it cannot."""


class ReservationCell:
    """The live reservation state of one namespace; see the module docstring.

    Args:
        state: the state to start from.
        persist: makes a new state durable before it takes effect; None keeps it in
            memory only (then it cannot persist through a power loss).

    Attributes:
        rtype: the type held now, 0 when none is: I/O paths test this first, so that
            checking costs one attribute read while no reservation is held.
    """

    def __init__(
        self, state: ReservationState | None = None, *, persist: Persist | None = None
    ) -> None:
        self._persist = persist
        self.state = state or _EMPTY
        self.rtype = self.state.rtype
        # Made on first use: a pool of thousands of replicas makes a cell for each.
        self._lock: asyncio.Lock | None = None
        # Weak: a connection that went away leaves no trace here, yet one whose I/O is
        # still running (its callbacks hold it) is still waited for.
        self._accessors: weakref.WeakSet[Accessor] | None = None

    def __repr__(self) -> str:
        state = self.state
        return (
            f"<ReservationCell gen={state.generation} rtype={state.rtype} "
            f"registrants={len(state.registrants)}>"
        )

    @property
    def persistent(self) -> bool:
        """True when the state survives a restart (RESCAP's PTPL capability)."""
        return self._persist is not None

    def allows(self, host: HostId, opcode: int) -> bool:
        """True when `host` may run I/O command `opcode` now (reservation commands and
        unknown opcodes are not the table's business and are allowed)."""
        return self.state.allows(host, IO_ACCESS.get(opcode, Access.NONE))

    def attach(self, accessor: Accessor) -> None:
        """Count `accessor` among those whose I/O a change that takes access away waits for."""
        if self._accessors is None:
            self._accessors = weakref.WeakSet()
        self._accessors.add(accessor)

    def detach(self, accessor: Accessor) -> None:
        if self._accessors is not None:
            self._accessors.discard(accessor)

    async def apply(self, step: Callable[[ReservationState], Outcome]) -> NvmeStatus:
        """Run one command on the state: durable, then in effect, then the I/O of hosts
        that lost access drained; one command at a time.

        Args:
            step: what the command does (`register`, `acquire`, `release` with their
                arguments bound).

        Returns:
            the status to answer the command with.

        Raises:
            Whatever `persist` raises; the state is then unchanged.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            old = self.state
            outcome = step(old)
            new = outcome.state
            if new != old:
                if self._persist is not None:
                    await self._persist(new)
                self.state = new
                self.rtype = new.rtype
                accessors = list(self._accessors or ())
                losing = [a for a in accessors if _lost_access(old, new, a.hostid)]
                if losing:
                    await asyncio.gather(*(a.quiesce() for a in losing))
            return outcome.status


_EMPTY = ReservationState()


def _lost_access(old: ReservationState, new: ReservationState, host: HostId) -> bool:
    return any(
        old.allows(host, need) and not new.allows(host, need)
        for need in (Access.READ, Access.WRITE)
    )
