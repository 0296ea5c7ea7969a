"""Admin commands through the sans-I/O queue pair: Identify data fields, log pages
(error, SMART, ANA, changed namespaces, discovery), features, asynchronous events,
Keep Alive and Abort, with exact statuses for what is refused."""

from __future__ import annotations

import struct

import pytest

from mayastor.bdev import MallocDevice, ReservationCell, ReservationState
from mayastor.nvmf.spec import (
    DISCOVERY_NQN,
    NSID_ALL,
    AdminOpcode,
    AnaLog,
    AnaState,
    AsyncEvent,
    AsyncEventConfig,
    Cns,
    Command,
    CommandSpecificStatus,
    ControllerMultiPath,
    DiscoveryLogPage,
    ErrorLogEntry,
    FeatureId,
    GenericStatus,
    Identify,
    IdentifyController,
    IdentifyNamespace,
    LogPageId,
    NamespaceIdType,
    NumberOfQueues,
    OptionalNvmCommands,
    Read,
    SglDescriptor,
    SglSupport,
    SmartLog,
    StatusCodeType,
    SubsystemType,
    TransportType,
    decode_namespace_id_descriptors,
    decode_namespace_list,
)
from mayastor.target import TargetConfig
from mayastor.target._subsystem import Subsystem
from tests.unit.target.wire import (
    DEVICE_UUID,
    HOSTNQN,
    OTHER_HOSTNQN,
    OTHER_PORT,
    PORT,
    SUBNQN,
    Answer,
    Wire,
    admin_wire,
    io_wire,
    make_registry,
)

GEN = StatusCodeType.GENERIC
CMD = StatusCodeType.COMMAND_SPECIFIC


# ------------------------------------------------------------------ Identify


async def test_identify_controller_describes_an_nvme_tcp_io_controller() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(Cns.CONTROLLER)
    assert answer.status.is_success
    ident = IdentifyController.decode(answer.data)
    assert ident.mn == "Mayastor NVMe controller"
    assert ident.sn == "SN0123456789"
    assert ident.subnqn == SUBNQN
    assert ident.cntlid == wire.cntlid
    assert ident.cntrltype == 1
    assert ident.nn == 1
    assert ident.mdts == 8  # 1 MiB in 4 KiB pages
    assert ident.maxcmd == 128
    assert ident.kas > 0
    assert ident.ioccsz == (64 + 8192) // 16
    assert ident.iorcsz == 1
    assert ident.icdoff == 0
    assert ident.sqes == 0x66
    assert ident.cqes == 0x44
    assert ident.sgls & SglSupport.SUPPORTED
    assert ident.sgls & SglSupport.OFFSET
    assert ident.oncs == (
        OptionalNvmCommands.DATASET_MANAGEMENT
        | OptionalNvmCommands.WRITE_ZEROES
        | OptionalNvmCommands.RESERVATIONS
    )
    assert ident.vwc & 1
    assert ident.cmic & ControllerMultiPath.ANA_REPORTING
    assert ident.nanagrpid == 1
    assert ident.anagrpmax == 1
    assert ident.mnan == 1
    assert ident.aerl == 3


async def test_identify_controller_follows_the_config() -> None:
    config = TargetConfig(max_data_transfer=128 * 1024, in_capsule_data_size=4096)
    wire = await admin_wire(make_registry(config=config))
    ident = IdentifyController.decode((await wire.identify(Cns.CONTROLLER)).data)
    assert ident.mdts == 5
    assert ident.ioccsz == (64 + 4096) // 16


async def test_identify_namespace_reports_size_format_and_the_uuid_as_nguid() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(Cns.NAMESPACE, nsid=1)
    ns = IdentifyNamespace.decode(answer.data)
    assert (ns.nsze, ns.ncap, ns.nuse) == (2048, 2048, 2048)
    assert ns.block_size == 512
    assert ns.nguid == DEVICE_UUID.bytes
    assert ns.anagrpid == 1
    assert ns.nmic == 1
    assert ns.dlfeat & 0x7 == 1  # deallocated blocks read as zeroes


async def test_rescap_names_every_type_and_ptpl_only_where_the_state_persists() -> None:
    wire = await admin_wire(make_registry())
    ns = IdentifyNamespace.decode((await wire.identify(Cns.NAMESPACE, nsid=1)).data)
    assert ns.rescap == 0xFE  # types 1-6 and IEKEY; a malloc disk's state is in memory

    async def persist(state: ReservationState) -> None:
        pass

    device = MallocDevice("kept", 2048, 512, uuid=DEVICE_UUID)
    device.reservations = ReservationCell(persist=persist)
    wire = await admin_wire(make_registry(device))
    ns = IdentifyNamespace.decode((await wire.identify(Cns.NAMESPACE, nsid=1)).data)
    assert ns.rescap == 0xFF


async def test_identify_namespace_of_a_4k_device() -> None:
    registry = make_registry(MallocDevice("m4k", 256, 4096, uuid=DEVICE_UUID))
    wire = await admin_wire(registry)
    ns = IdentifyNamespace.decode((await wire.identify(Cns.NAMESPACE, nsid=1)).data)
    assert ns.block_size == 4096
    assert ns.nsze == 256


async def test_namespace_descriptors_carry_nguid_and_uuid_of_the_device() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(Cns.NAMESPACE_ID_DESCRIPTORS, 1)
    found = decode_namespace_id_descriptors(answer.data)
    by_type = {d.nidt: d.nid for d in found}
    assert by_type[NamespaceIdType.NGUID] == DEVICE_UUID.bytes
    assert by_type[NamespaceIdType.UUID] == DEVICE_UUID.bytes
    assert by_type[NamespaceIdType.CSI] == b"\x00"


@pytest.mark.parametrize(("above", "listed"), [(0, [1]), (1, [])])
async def test_active_namespace_list_holds_namespace_1(above: int, listed: list[int]) -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(Cns.ACTIVE_NAMESPACES, above)
    assert decode_namespace_list(answer.data) == listed


@pytest.mark.parametrize("nsid", [0, 2, NSID_ALL])
async def test_identify_of_another_namespace_is_invalid_namespace(nsid: int) -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(Cns.NAMESPACE, nsid)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_NAMESPACE_OR_FORMAT)
    assert answer.data == b""


async def test_an_unknown_cns_is_invalid_field() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(0x10)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


async def test_nvm_command_set_controller_data_reads_as_no_limits() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.identify(Cns.IO_COMMAND_SET_CONTROLLER, csi=0)
    assert answer.status.is_success
    assert answer.data == bytes(4096)


async def test_identify_into_a_smaller_buffer_sends_only_what_fits() -> None:
    wire = await admin_wire(make_registry())
    cmd = Identify(Cns.CONTROLLER).to_command(wire.next_cid(), 0, SglDescriptor.transport(1024))
    answer = await wire.command(cmd)
    assert answer.status.is_success
    assert len(answer.data) == 1024


# ------------------------------------------------------------------ log pages


async def test_error_log_records_a_failed_command_newest_first() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin)
    failed = await io.command(Read(5000, 0).to_command(77, 1, SglDescriptor.transport(512)))
    assert failed.sct_sc == (GEN, GenericStatus.LBA_OUT_OF_RANGE)
    answer = await admin.log_page(LogPageId.ERROR_INFORMATION, 64 * 16)
    newest = ErrorLogEntry.decode(answer.data[:64])
    assert newest.error_count >= 1
    assert (newest.sqid, newest.cid, newest.lba) == (1, 77, 5000)
    assert newest.status_field >> 1 == failed.status.field
    assert newest.trtype == TransportType.TCP


async def test_smart_log_counts_the_device_io() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    device = registry.subsystems[SUBNQN].device
    assert device is not None
    await device.write(0, bytes(512 * 1000))
    answer = await admin.log_page(LogPageId.SMART_HEALTH, 512)
    smart = SmartLog.decode(answer.data)
    assert smart.host_write_commands == 1
    assert smart.data_units_written == 1  # 1000 x 512 bytes, rounded up


async def test_ana_log_reports_the_subsystem_state_and_its_namespace() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    registry.subsystems[SUBNQN].set_ana_state(AnaState.NON_OPTIMIZED)
    answer = await admin.log_page(LogPageId.ANA, 4096)
    log = AnaLog.decode(answer.data)
    assert [(g.grpid, g.state, g.nsids) for g in log.groups] == [(1, AnaState.NON_OPTIMIZED, (1,))]


async def test_ana_log_with_rgo_leaves_out_the_namespace_ids() -> None:
    admin = await admin_wire(make_registry())
    answer = await admin.log_page(LogPageId.ANA, 4096, lsp=1)
    assert [g.nsids for g in AnaLog.decode(answer.data).groups] == [()]


async def test_a_log_page_can_be_read_in_pieces_at_offsets() -> None:
    admin = await admin_wire(make_registry())
    whole = (await admin.log_page(LogPageId.SMART_HEALTH, 512)).data
    tail = (await admin.log_page(LogPageId.SMART_HEALTH, 256, offset=256)).data
    assert tail == whole[256:]


async def test_an_offset_beyond_the_page_is_invalid_field() -> None:
    admin = await admin_wire(make_registry())
    answer = await admin.log_page(LogPageId.SMART_HEALTH, 4, offset=4096)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


async def test_an_unsupported_log_page_is_invalid_log_page() -> None:
    admin = await admin_wire(make_registry())
    answer = await admin.log_page(LogPageId.FIRMWARE_SLOT, 512)
    assert answer.sct_sc == (CMD, CommandSpecificStatus.INVALID_LOG_PAGE)


async def test_a_log_page_longer_than_mdts_is_invalid_field() -> None:
    admin = await admin_wire(make_registry())
    answer = await admin.log_page(LogPageId.ERROR_INFORMATION, 2 << 20)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


# ------------------------------------------------------------------ discovery


async def test_discovery_log_lists_what_the_host_may_see_with_its_port() -> None:
    registry = make_registry()
    registry.subsystems["nqn.2019-05.io.openebs:nexus-1"] = Subsystem(
        "nqn.2019-05.io.openebs:nexus-1",
        MallocDevice("nx", 2048),
        port=OTHER_PORT,
        allowed_hosts=[OTHER_HOSTNQN],
        serial="S",
        model="M",
        cntlid_range=(1, 10),
    )
    wire = await admin_wire(registry, DISCOVERY_NQN)
    answer = await wire.log_page(LogPageId.DISCOVERY, 1024 + 2 * 1024, nsid=0)
    page = DiscoveryLogPage.decode(answer.data)
    assert [(e.subnqn, e.trsvcid) for e in page.entries] == [(SUBNQN, str(PORT))]
    entry = page.entries[0]
    assert entry.trtype == TransportType.TCP
    assert entry.adrfam == 1  # IPv4
    assert entry.traddr == "127.0.0.1"
    assert entry.subtype == SubsystemType.NVME
    assert entry.treq == 0x02 | 0x04  # no secure channel; SQ flow control may be disabled
    assert entry.cntlid == 0xFFFF
    assert entry.asqsz == 32


async def test_discovery_log_shows_another_host_its_own_subsystems() -> None:
    registry = make_registry(allowed_hosts=[HOSTNQN])
    wire = await admin_wire(registry, DISCOVERY_NQN, hostnqn=OTHER_HOSTNQN)
    answer = await wire.log_page(LogPageId.DISCOVERY, 2048, nsid=0)
    assert DiscoveryLogPage.decode(answer.data).entries == ()


async def test_discovery_identify_is_a_discovery_controller() -> None:
    wire = await admin_wire(make_registry(), DISCOVERY_NQN)
    ident = IdentifyController.decode((await wire.identify(Cns.CONTROLLER)).data)
    assert ident.cntrltype == 2
    assert ident.subnqn == DISCOVERY_NQN
    assert ident.oaes & AsyncEventConfig.DISCOVERY_LOG_CHANGE


async def test_discovery_controllers_serve_no_namespace_commands() -> None:
    wire = await admin_wire(make_registry(), DISCOVERY_NQN)
    assert (await wire.identify(Cns.NAMESPACE, 1)).sct_sc == (GEN, GenericStatus.INVALID_FIELD)
    answer = await wire.admin(AdminOpcode.ABORT)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_OPCODE)


async def test_a_discovery_log_change_completes_a_held_event_request() -> None:
    registry = make_registry()
    wire = await admin_wire(registry, DISCOVERY_NQN)
    enable = int(AsyncEventConfig.DISCOVERY_LOG_CHANGE)
    assert (await set_feature(wire, FeatureId.ASYNC_EVENT_CONFIGURATION, enable)).status.is_success
    cid = wire.next_cid()
    held = await wire.command(Command(AdminOpcode.ASYNC_EVENT_REQUEST, cid))
    assert held.completion is None
    registry.changed()
    answer = await wire.collect(cid)
    assert answer.completion is not None
    assert AsyncEvent.decode(answer.completion.dw0) == AsyncEvent.discovery_log_change()


# ------------------------------------------------------------------ features


async def set_feature(wire: Wire, fid: int, value: int) -> Answer:
    return await wire.admin(AdminOpcode.SET_FEATURES, cdw10=fid, cdw11=value)


async def get_feature(wire: Wire, fid: int, sel: int = 0) -> int:
    answer = await wire.admin(AdminOpcode.GET_FEATURES, cdw10=fid | sel << 8)
    assert answer.status.is_success, answer
    return answer.dw0


async def test_number_of_queues_is_granted_up_to_the_limit() -> None:
    wire = await admin_wire(make_registry(config=TargetConfig(max_io_queues=4)))
    asked = NumberOfQueues(7, 7).encode()
    answer = await set_feature(wire, FeatureId.NUMBER_OF_QUEUES, asked)
    assert answer.completion is not None
    assert NumberOfQueues.decode(answer.completion.dw0) == NumberOfQueues(3, 3)
    got = await get_feature(wire, FeatureId.NUMBER_OF_QUEUES)
    assert NumberOfQueues.decode(got) == NumberOfQueues(3, 3)


async def test_number_of_queues_cannot_change_once_io_queues_exist() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    await io_wire(registry, admin)
    answer = await set_feature(admin, FeatureId.NUMBER_OF_QUEUES, NumberOfQueues(1, 1).encode())
    assert answer.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


async def test_keep_alive_timer_feature_reads_back_what_was_set() -> None:
    wire = await admin_wire(make_registry(), kato=5000)
    assert await get_feature(wire, FeatureId.KEEP_ALIVE_TIMER) == 5000
    await set_feature(wire, FeatureId.KEEP_ALIVE_TIMER, 15000)
    assert await get_feature(wire, FeatureId.KEEP_ALIVE_TIMER) == 15000


async def test_async_event_configuration_keeps_only_supported_notices() -> None:
    wire = await admin_wire(make_registry())
    await set_feature(wire, FeatureId.ASYNC_EVENT_CONFIGURATION, 0xFFFF_FFFF)
    value = await get_feature(wire, FeatureId.ASYNC_EVENT_CONFIGURATION)
    assert value == AsyncEventConfig.NAMESPACE_ATTRIBUTE | AsyncEventConfig.ANA_CHANGE


async def test_volatile_write_cache_can_be_turned_off() -> None:
    registry = make_registry()
    wire = await admin_wire(registry)
    assert await get_feature(wire, FeatureId.VOLATILE_WRITE_CACHE) == 1
    await set_feature(wire, FeatureId.VOLATILE_WRITE_CACHE, 0)
    assert await get_feature(wire, FeatureId.VOLATILE_WRITE_CACHE) == 0


async def test_saving_a_feature_is_refused_as_not_saveable() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.admin(
        AdminOpcode.SET_FEATURES, cdw10=FeatureId.KEEP_ALIVE_TIMER | 1 << 31, cdw11=1000
    )
    assert answer.sct_sc == (CMD, CommandSpecificStatus.FEATURE_NOT_SAVEABLE)


async def test_an_unsupported_feature_is_invalid_field() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.admin(AdminOpcode.GET_FEATURES, cdw10=FeatureId.TIMESTAMP)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


async def test_supported_capabilities_say_changeable() -> None:
    wire = await admin_wire(make_registry())
    assert await get_feature(wire, FeatureId.KEEP_ALIVE_TIMER, sel=3) == 1 << 2


# ------------------------------------------------------------------ events, keep alive, abort


async def test_an_async_event_request_is_held_until_an_ana_change() -> None:
    registry = make_registry()
    wire = await admin_wire(registry)
    await set_feature(wire, FeatureId.ASYNC_EVENT_CONFIGURATION, AsyncEventConfig.ANA_CHANGE)
    cid = wire.next_cid()
    held = await wire.command(Command(AdminOpcode.ASYNC_EVENT_REQUEST, cid))
    assert held.completion is None
    registry.subsystems[SUBNQN].set_ana_state(AnaState.INACCESSIBLE)
    answer = await wire.collect(cid)
    assert answer.completion is not None
    assert AsyncEvent.decode(answer.completion.dw0) == AsyncEvent.ana_change()


async def test_an_event_the_host_did_not_enable_is_not_sent() -> None:
    registry = make_registry()
    wire = await admin_wire(registry)
    cid = wire.next_cid()
    await wire.command(Command(AdminOpcode.ASYNC_EVENT_REQUEST, cid))
    registry.subsystems[SUBNQN].set_ana_state(AnaState.INACCESSIBLE)
    assert (await wire.collect(cid)).completion is None


async def test_more_event_requests_than_aerl_allows_are_refused() -> None:
    wire = await admin_wire(make_registry())
    for _ in range(4):
        held = await wire.command(Command(AdminOpcode.ASYNC_EVENT_REQUEST, wire.next_cid()))
        assert held.completion is None
    answer = await wire.command(Command(AdminOpcode.ASYNC_EVENT_REQUEST, wire.next_cid()))
    assert answer.sct_sc == (CMD, CommandSpecificStatus.ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED)


async def test_a_namespace_change_is_reported_and_listed_until_read() -> None:
    registry = make_registry()
    wire = await admin_wire(registry)
    await set_feature(
        wire, FeatureId.ASYNC_EVENT_CONFIGURATION, AsyncEventConfig.NAMESPACE_ATTRIBUTE
    )
    cid = wire.next_cid()
    await wire.command(Command(AdminOpcode.ASYNC_EVENT_REQUEST, cid))
    registry.subsystems[SUBNQN].namespace_changed()
    event = await wire.collect(cid)
    assert event.completion is not None
    assert AsyncEvent.decode(event.completion.dw0) == AsyncEvent.namespace_attribute_changed()
    first = await wire.log_page(LogPageId.CHANGED_NAMESPACES, 4096)
    assert struct.unpack_from("<2I", first.data) == (1, 0)
    again = await wire.log_page(LogPageId.CHANGED_NAMESPACES, 4096)
    assert again.data == bytes(4096)


async def test_keep_alive_restarts_the_controller_timer() -> None:
    registry = make_registry()
    wire = await admin_wire(registry, kato=1000)
    ctrl = registry.subsystems[SUBNQN].controllers[wire.cntlid]
    wire.now = 0.9
    assert (await wire.admin(AdminOpcode.KEEP_ALIVE)).status.is_success
    ctrl.keep_alive.traffic = False
    assert not ctrl.keep_alive.expired(1.5)
    assert ctrl.keep_alive.expired(1.9)


async def test_abort_answers_not_aborted() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.admin(AdminOpcode.ABORT, cdw10=1 | 5 << 16)
    assert answer.status.is_success
    assert answer.dw0 & 1 == 1


@pytest.mark.parametrize(
    "opcode", [AdminOpcode.CREATE_IO_SQ, AdminOpcode.NAMESPACE_MANAGEMENT, 0xC0]
)
async def test_an_admin_opcode_we_do_not_serve_is_invalid_opcode(opcode: int) -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.admin(opcode)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_OPCODE)
