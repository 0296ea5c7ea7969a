"""The data a controller returns about itself and its namespace: Identify Controller,
Identify Namespace, the namespace identification descriptors, and the log pages
(error information, SMART, changed namespaces, ANA, discovery).

Built from the subsystem, the controller and the target's limits each time they are
asked for: admin commands are rare, and the values (sizes, ANA state, I/O counters)
change underneath.
"""

from __future__ import annotations

from typing import Any

from mayastor.nvmf.spec import (
    DLFEAT_READS_ZEROES,
    DLFEAT_WRITE_ZEROES_DEALLOCATES,
    IDENTIFY_DATA_SIZE,
    NMIC_SHARED,
    TREQ_SQ_FLOW_CONTROL_DISABLE,
    VS_1_4,
    AnaCapabilities,
    AnaGroupDescriptor,
    AnaLog,
    ControllerMultiPath,
    DiscoveryLogEntry,
    DiscoveryLogPage,
    IdentifyController,
    IdentifyNamespace,
    LbaFormat,
    LogPageAttributes,
    NamespaceIdDescriptor,
    NamespaceIdType,
    OptionalNvmCommands,
    ReservationCapabilities,
    SecureChannel,
    SglSupport,
    SmartLog,
    SubsystemType,
    data_units,
    encode_changed_namespace_list,
    encode_error_log,
    encode_namespace_id_descriptors,
)
from mayastor.target._config import ADMIN_IN_CAPSULE_DATA
from mayastor.target._controller import Controller
from mayastor.target._subsystem import ANA_GROUP, NSID, Subsystem, SubsystemRegistry

KEEP_ALIVE_GRANULARITY = 10
"""KAS in 100 ms units: keep-alive timeouts count in whole seconds."""
CONTROLLER_TYPE_IO = 1
CONTROLLER_TYPE_DISCOVERY = 2
ANA_TRANSITION_TIME = 10
"""ANATT in seconds."""
VWC_PRESENT_FLUSH_ALL = 0x07
"""VWC: a volatile write cache is present, and Flush takes NSID FFFFFFFFh."""

_SGLS = int(SglSupport.SUPPORTED | SglSupport.OFFSET | SglSupport.TRANSPORT_DATA_BLOCK)
_ANACAP = int(
    AnaCapabilities.OPTIMIZED
    | AnaCapabilities.NON_OPTIMIZED
    | AnaCapabilities.INACCESSIBLE
    | AnaCapabilities.PERSISTENT_LOSS
    | AnaCapabilities.CHANGE
)


def identify_controller(ctrl: Controller) -> bytes:
    """Identify Controller (CNS 01h) of an I/O or discovery controller."""
    config = ctrl.config
    sub = ctrl.subsystem
    common: dict[str, Any] = {
        "sn": sub.serial,
        "mn": sub.model,
        "fr": config.firmware_revision,
        "mdts": config.mdts,
        "cntlid": ctrl.cntlid,
        "ver": VS_1_4,
        "oaes": ctrl.supported_events,
        "aerl": config.async_event_limit - 1,
        "lpa": int(LogPageAttributes.EXTENDED_DATA),
        "elpe": config.error_log_entries - 1,
        "kas": KEEP_ALIVE_GRANULARITY,
        "sgls": _SGLS,
        "subnqn": sub.nqn,
        "fcatt": 0,  # dynamic controller model
        "msdbd": 1,
        "iorcsz": 1,
    }
    if ctrl.is_discovery:
        return IdentifyController(
            **common,
            cntrltype=CONTROLLER_TYPE_DISCOVERY,
            maxcmd=config.max_queue_entries,
            ioccsz=(64 + ADMIN_IN_CAPSULE_DATA) // 16,
        ).encode()
    return IdentifyController(
        **common,
        rab=6,
        cmic=int(ControllerMultiPath.MULTI_CONTROLLER | ControllerMultiPath.ANA_REPORTING),
        cntrltype=CONTROLLER_TYPE_IO,
        acl=3,
        anatt=ANA_TRANSITION_TIME,
        anacap=_ANACAP,
        anagrpmax=ANA_GROUP,
        nanagrpid=ANA_GROUP,
        sqes=0x66,
        cqes=0x44,
        maxcmd=config.max_queue_entries,
        nn=NSID,
        oncs=int(
            OptionalNvmCommands.DATASET_MANAGEMENT
            | OptionalNvmCommands.WRITE_ZEROES
            | OptionalNvmCommands.RESERVATIONS
        ),
        vwc=VWC_PRESENT_FLUSH_ALL,
        mnan=NSID,
        ioccsz=config.ioccsz,
    ).encode()


def identify_namespace(sub: Subsystem) -> bytes:
    """Identify Namespace (CNS 00h) of the subsystem's one namespace."""
    device = sub.device
    assert device is not None
    blocks = device.num_blocks
    return IdentifyNamespace(
        nsze=blocks,
        ncap=blocks,
        nuse=blocks,
        lbaf=(LbaFormat.for_block_size(device.block_size),),
        nmic=NMIC_SHARED,
        rescap=reservation_capabilities(sub),
        dlfeat=DLFEAT_READS_ZEROES | DLFEAT_WRITE_ZEROES_DEALLOCATES,
        nvmcap=blocks * device.block_size,
        anagrpid=ANA_GROUP,
        nguid=sub.namespace_uuid.bytes,
    ).encode()


def reservation_capabilities(sub: Subsystem) -> int:
    """RESCAP: every type, and Persist Through Power Loss where the state is durable
    (a replica's, kept in its pool; not a subsystem's in-memory one)."""
    caps = ReservationCapabilities.all_types()
    if sub.reservations.persistent:
        caps |= ReservationCapabilities.PERSIST_THROUGH_POWER_LOSS
    return int(caps)


def namespace_descriptors(sub: Subsystem) -> bytes:
    """The namespace identification descriptors (CNS 03h): NGUID, UUID and CSI."""
    ns_uuid = sub.namespace_uuid
    return encode_namespace_id_descriptors(
        [
            NamespaceIdDescriptor.nguid(ns_uuid.bytes),
            NamespaceIdDescriptor.uuid(ns_uuid),
            NamespaceIdDescriptor(NamespaceIdType.CSI, b"\x00"),
        ]
    )


ZEROES = bytes(IDENTIFY_DATA_SIZE)
"""An all-zero Identify structure: the NVM command set's controller data (CNS 06h),
whose limits (WZSL, DMRL, ...) all read as 'no limit'."""


def error_log(ctrl: Controller) -> bytes:
    """Error information (LID 01h): the controller's recent errors, newest first."""
    return encode_error_log(ctrl.errors, ctrl.config.error_log_entries)


def smart_log(sub: Subsystem) -> bytes:
    """SMART / health information (LID 02h) from the device's I/O counters."""
    stats = sub.device.stats if sub.device is not None else None
    if stats is None:
        return SmartLog().encode()
    return SmartLog(
        temperature=0,
        data_units_read=data_units(stats.bytes_read),
        data_units_written=data_units(stats.bytes_written),
        host_read_commands=stats.num_read_ops,
        host_write_commands=stats.num_write_ops,
        media_errors=stats.num_errors,
    ).encode()


def changed_namespace_log(ctrl: Controller) -> bytes:
    """Changed namespace list (LID 04h)."""
    return encode_changed_namespace_list(ctrl.changed_nsids)


def ana_log(sub: Subsystem, *, groups_only: bool) -> bytes:
    """ANA (LID 0Ch): the subsystem's one group with its state and its namespace."""
    group = AnaGroupDescriptor(
        grpid=ANA_GROUP, state=sub.ana_state, nsids=(NSID,), chgcnt=sub.ana_change_count
    )
    return AnaLog(chgcnt=sub.ana_change_count, groups=(group,)).encode(groups_only=groups_only)


def discovery_log(registry: SubsystemRegistry, hostnqn: str) -> bytes:
    """The discovery log (LID 70h): what `hostnqn` may connect to, each on its port."""
    entries = tuple(
        DiscoveryLogEntry(
            trsvcid=str(sub.port),
            traddr=registry.address,
            subnqn=sub.nqn,
            subtype=SubsystemType.NVME,
            treq=SecureChannel.NOT_REQUIRED | TREQ_SQ_FLOW_CONTROL_DISABLE,
            portid=sub.port or 0,
            asqsz=registry.config.max_admin_queue_entries,
        )
        for sub in registry.visible_to(hostnqn)
    )
    return DiscoveryLogPage(genctr=registry.generation, entries=entries).encode()
