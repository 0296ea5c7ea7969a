"""The IC exchange, Fabrics Connect and the controller registers, through the sans-I/O
queue pair: exact completions for what is accepted and what is refused."""

from __future__ import annotations

import pytest

from mayastor.nvmf.pdu import DIGEST_LEN, FatalErrorStatus
from mayastor.nvmf.spec import (
    DISCOVERY_NQN,
    VS_1_4,
    AdminOpcode,
    Cns,
    CommandSpecificStatus,
    Connect,
    ControllerCapabilities,
    ControllerConfiguration,
    ControllerStatus,
    GenericStatus,
    PropertyOffset,
    ShutdownStatus,
    StatusCodeType,
)
from mayastor.target import TargetConfig
from mayastor.target._controller_state import ControllerState
from tests.unit.target.wire import (
    HOSTNQN,
    OTHER_HOSTNQN,
    OTHER_PORT,
    SUBNQN,
    Wire,
    admin_wire,
    io_wire,
    make_registry,
)

CMD = StatusCodeType.COMMAND_SPECIFIC
GEN = StatusCodeType.GENERIC
INVALID_PARAMETERS = (CMD, CommandSpecificStatus.CONNECT_INVALID_PARAMETERS)
SUBNQN_IN_DATA = 1 << 16 | 256
HOSTNQN_IN_DATA = 1 << 16 | 512
CNTLID_IN_DATA = 1 << 16 | 16


# ------------------------------------------------------------------ IC exchange


@pytest.mark.parametrize(
    ("hdgst", "ddgst"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_icresp_echoes_the_digests_the_host_asked_for(hdgst: bool, ddgst: bool) -> None:
    wire = Wire(make_registry())
    resp = wire.ic(hdgst=hdgst, ddgst=ddgst)
    assert (resp.hdgst_enable, resp.ddgst_enable) == (hdgst, ddgst)
    assert resp.cpda == 0
    assert resp.pfv == 0


def test_icresp_announces_the_configured_maxh2cdata() -> None:
    wire = Wire(make_registry(config=TargetConfig(max_h2c_data=8192)))
    assert wire.ic().maxh2cdata == 8192


async def test_with_header_digests_negotiated_every_answer_carries_one() -> None:
    wire = Wire(make_registry())
    wire.ic(hdgst=True)
    answer = await wire.connect()  # the wire's reader checks the digest of what comes back
    assert answer.status.is_success
    assert DIGEST_LEN == 4


async def test_data_is_sent_at_the_alignment_the_host_asked_for() -> None:
    registry = make_registry()
    wire = Wire(registry)
    wire.ic(hpda=7)  # 32-byte alignment of C2H data
    wire.reader.configure(pda=7)
    await wire.connect()
    await wire.enable()
    answer = await wire.identify(Cns.CONTROLLER)
    assert answer.status.is_success
    assert len(answer.data) == 4096


def test_a_capsule_before_icreq_is_a_sequence_error_and_closes() -> None:
    wire = Wire(make_registry())
    wire.send(wire.writer.encode_capsule_cmd(Connect(0, 31).to_command(1).encode()))
    term = wire.term()
    assert term is not None
    assert term.fes == FatalErrorStatus.PDU_SEQUENCE_ERROR
    assert wire.link.closed


# ------------------------------------------------------------------ Connect


async def test_admin_connect_creates_a_controller_with_a_dynamic_id() -> None:
    registry = make_registry()
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(kato=5000)
    assert answer.status.is_success
    cntlid = answer.completion.dw0 & 0xFFFF if answer.completion else 0
    ctrl = registry.subsystems[SUBNQN].controllers[cntlid]
    assert ctrl.hostnqn == HOSTNQN
    assert ctrl.keep_alive.timeout_ms == 5000
    assert ctrl.state is ControllerState.DISABLED


async def test_controller_ids_come_from_the_subsystem_range() -> None:
    registry = make_registry()
    registry.subsystems[SUBNQN].cntlid_range = (100, 101)
    registry.subsystems[SUBNQN]._next_cntlid = 100
    ids = []
    for _ in range(2):
        wire = Wire(registry)
        wire.ic()
        answer = await wire.connect()
        assert answer.completion is not None
        ids.append(answer.completion.dw0)
    assert sorted(ids) == [100, 101]
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect()
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_CONTROLLER_BUSY)


async def test_unknown_subsystem_is_invalid_parameters_pointing_at_subnqn() -> None:
    wire = Wire(make_registry())
    wire.ic()
    answer = await wire.connect("nqn.2019-05.io.openebs:not-here")
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == SUBNQN_IN_DATA
    assert answer.status.dnr


async def test_a_subsystem_is_unknown_through_a_port_it_is_not_served_on() -> None:
    registry = make_registry()
    wire = Wire(registry, port=OTHER_PORT)
    wire.ic()
    answer = await wire.connect(SUBNQN)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == SUBNQN_IN_DATA
    assert not registry.subsystems[SUBNQN].controllers


async def test_a_host_not_on_the_allow_list_gets_invalid_host_and_no_controller() -> None:
    registry = make_registry(allowed_hosts=[OTHER_HOSTNQN])
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect()
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_INVALID_HOST)
    assert answer.dw0 == HOSTNQN_IN_DATA
    assert not registry.subsystems[SUBNQN].controllers
    refused = await wire.identify(Cns.CONTROLLER)
    assert refused.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


async def test_an_empty_allow_list_refuses_everyone() -> None:
    wire = Wire(make_registry(allowed_hosts=[]))
    wire.ic()
    answer = await wire.connect()
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_INVALID_HOST)


async def test_a_host_on_the_allow_list_is_admitted() -> None:
    wire = Wire(make_registry(allowed_hosts=[OTHER_HOSTNQN, HOSTNQN]))
    wire.ic()
    assert (await wire.connect()).status.is_success


async def test_an_allow_list_prefix_ending_in_a_star_admits_the_hosts_it_names() -> None:
    prefix = HOSTNQN[: HOSTNQN.rindex(":") + 1] + "*"
    wire = Wire(make_registry(allowed_hosts=[prefix]))
    wire.ic()
    assert (await wire.connect()).status.is_success


async def test_an_allow_list_prefix_refuses_hosts_outside_it() -> None:
    wire = Wire(make_registry(allowed_hosts=["nqn.2019-05.io.openebs:node-name:*"]))
    wire.ic()
    answer = await wire.connect()  # HOSTNQN is not an io-engine's
    assert answer.sct_sc == (CMD, CommandSpecificStatus.CONNECT_INVALID_HOST)


async def test_a_malformed_host_nqn_is_invalid_parameters_pointing_at_hostnqn() -> None:
    wire = Wire(make_registry())
    wire.ic()
    answer = await wire.connect(hostnqn="not an nqn")
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == HOSTNQN_IN_DATA


async def test_admin_connect_with_a_static_controller_id_is_refused() -> None:
    wire = Wire(make_registry())
    wire.ic()
    answer = await wire.connect(cntlid=7)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == CNTLID_IN_DATA


@pytest.mark.parametrize("sqsize", [0, 32, 1000])
async def test_an_admin_queue_size_out_of_range_points_at_sqsize(sqsize: int) -> None:
    wire = Wire(make_registry())
    wire.ic()
    answer = await wire.connect(sqsize=sqsize)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == Connect.SQSIZE_OFFSET


async def test_connect_data_can_come_by_r2t() -> None:
    registry = make_registry()
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(in_capsule=False)
    assert answer.status.is_success
    assert [(r.offset, r.length) for r in answer.r2ts] == [(0, 1024)]


async def test_a_second_connect_on_a_connected_queue_is_a_sequence_error() -> None:
    wire = await admin_wire(make_registry())
    answer = await wire.connect()
    assert answer.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


async def test_commands_before_connect_are_sequence_errors() -> None:
    wire = Wire(make_registry())
    wire.ic()
    answer = await wire.identify(Cns.CONTROLLER)
    assert answer.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


# ------------------------------------------------------------------ I/O queue Connect


async def test_io_queue_attaches_to_the_controller_by_cntlid() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin, qid=1)
    ctrl = registry.subsystems[SUBNQN].controllers[admin.cntlid]
    assert ctrl.io_queues[1] is io.qp


async def test_io_queue_for_an_unknown_controller_points_at_cntlid() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=1, cntlid=admin.cntlid + 5, sqsize=127)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == CNTLID_IN_DATA


async def test_io_queue_from_another_host_is_refused() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=1, cntlid=admin.cntlid, hostnqn=OTHER_HOSTNQN, sqsize=127)
    assert answer.sct_sc == INVALID_PARAMETERS


async def test_io_queue_before_the_controller_is_enabled_is_a_sequence_error() -> None:
    registry = make_registry()
    admin = Wire(registry)
    admin.ic()
    await admin.connect()
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=1, cntlid=admin.cntlid, sqsize=127)
    assert answer.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


async def test_the_same_io_queue_twice_is_a_sequence_error() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    await io_wire(registry, admin, qid=1)
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=1, cntlid=admin.cntlid, sqsize=127)
    assert answer.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


async def test_io_queue_beyond_the_granted_count_points_at_qid() -> None:
    registry = make_registry(config=TargetConfig(max_io_queues=2))
    admin = await admin_wire(registry)
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=3, cntlid=admin.cntlid, sqsize=127)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == Connect.QID_OFFSET


async def test_io_queue_deeper_than_mqes_points_at_sqsize() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(qid=1, cntlid=admin.cntlid, sqsize=128)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == Connect.SQSIZE_OFFSET


async def test_the_discovery_subsystem_has_no_io_queues() -> None:
    registry = make_registry()
    admin = await admin_wire(registry, DISCOVERY_NQN)
    wire = Wire(registry)
    wire.ic()
    answer = await wire.connect(DISCOVERY_NQN, qid=1, cntlid=admin.cntlid, sqsize=31)
    assert answer.sct_sc == INVALID_PARAMETERS
    assert answer.dw0 == Connect.QID_OFFSET


# ------------------------------------------------------------------ registers


async def test_cap_reports_mqes_and_the_nvm_command_set() -> None:
    registry = make_registry()
    wire = Wire(registry)
    wire.ic()
    await wire.connect()
    answer = await wire.property_get(PropertyOffset.CAP, 8)
    assert answer.completion is not None
    cap = ControllerCapabilities.decode(answer.completion.result64)
    assert cap.mqes == 127
    assert cap.cqr
    assert cap.css == 1
    assert cap.to > 0


async def test_vs_is_1_4() -> None:
    wire = Wire(make_registry())
    wire.ic()
    await wire.connect()
    answer = await wire.property_get(PropertyOffset.VS)
    assert answer.dw0 == VS_1_4


async def test_enabling_sets_csts_ready() -> None:
    wire = Wire(make_registry())
    wire.ic()
    await wire.connect()
    before = await wire.property_get(PropertyOffset.CSTS)
    assert not ControllerStatus.decode(before.dw0).rdy
    assert (await wire.enable()).status.is_success
    after = await wire.property_get(PropertyOffset.CSTS)
    assert ControllerStatus.decode(after.dw0).rdy
    cc = await wire.property_get(PropertyOffset.CC)
    assert ControllerConfiguration.decode(cc.dw0).en


async def test_enabling_with_an_sqe_size_we_do_not_run_sets_cfs() -> None:
    wire = Wire(make_registry())
    wire.ic()
    await wire.connect()
    cc = ControllerConfiguration(en=True, iosqes=7, iocqes=4).encode()
    assert (await wire.property_set(PropertyOffset.CC, cc)).status.is_success
    csts = await wire.property_get(PropertyOffset.CSTS)
    assert csts.completion is not None
    assert ControllerStatus.decode(csts.completion.dw0).cfs


async def test_a_shutdown_notification_completes_after_the_flush() -> None:
    registry = make_registry()
    wire = await admin_wire(registry)
    device = registry.subsystems[SUBNQN].device
    assert device is not None
    flushes = device.stats.num_flush_ops
    assert (await wire.shutdown()).status.is_success
    csts = await wire.property_get(PropertyOffset.CSTS)
    assert csts.completion is not None
    assert ControllerStatus.decode(csts.completion.dw0).shst == ShutdownStatus.COMPLETE
    assert device.stats.num_flush_ops == flushes + 1


async def test_a_reset_closes_the_io_queues_and_keeps_the_admin_queue() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin)
    cc = ControllerConfiguration(en=False, iosqes=6, iocqes=4).encode()
    assert (await admin.property_set(PropertyOffset.CC, cc)).status.is_success
    assert io.link.closed
    assert not admin.link.closed
    ctrl = registry.subsystems[SUBNQN].controllers[admin.cntlid]
    assert ctrl.state is ControllerState.DISABLED
    assert not ctrl.io_queues


@pytest.mark.parametrize(
    ("offset", "size"), [(PropertyOffset.CAP, 4), (0x1000, 4), (PropertyOffset.VS, 8)]
)
async def test_an_unknown_property_or_wrong_size_is_invalid_field(offset: int, size: int) -> None:
    wire = Wire(make_registry())
    wire.ic()
    await wire.connect()
    answer = await wire.property_get(offset, size)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


async def test_writing_a_read_only_property_is_invalid_field() -> None:
    wire = Wire(make_registry())
    wire.ic()
    await wire.connect()
    answer = await wire.property_set(PropertyOffset.CSTS, 1)
    assert answer.sct_sc == (GEN, GenericStatus.INVALID_FIELD)


async def test_admin_commands_wait_for_the_controller_to_be_ready() -> None:
    wire = Wire(make_registry())
    wire.ic()
    await wire.connect()
    answer = await wire.admin(AdminOpcode.KEEP_ALIVE)
    assert answer.sct_sc == (GEN, GenericStatus.COMMAND_SEQUENCE_ERROR)


# ------------------------------------------------------------------ going away


async def test_losing_the_admin_connection_frees_the_controller_and_closes_io_queues() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin)
    admin.qp.transport_closed()
    assert not registry.subsystems[SUBNQN].controllers
    assert io.link.closed


async def test_losing_an_io_connection_only_detaches_that_queue() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    io = await io_wire(registry, admin)
    io.qp.transport_closed()
    ctrl = registry.subsystems[SUBNQN].controllers[admin.cntlid]
    assert not ctrl.io_queues
    assert not admin.link.closed


async def test_h2ctermreq_closes_the_connection_and_frees_its_controller() -> None:
    registry = make_registry()
    admin = await admin_wire(registry)
    admin.send(admin.writer.encode_term_req(FatalErrorStatus.PDU_SEQUENCE_ERROR))
    assert admin.link.closed
    assert not registry.subsystems[SUBNQN].controllers
