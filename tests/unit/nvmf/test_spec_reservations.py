"""The reservation commands, their data and the Reservation Status data structure against
the byte layouts of NVMe Base 1.4 (sections 6.10-6.13, Figures 372-392)."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    NO_DATA,
    RESERVATION_STATUS_EXT_HEADER_SIZE,
    RESERVATION_STATUS_HEADER_SIZE,
    AcquireAction,
    AcquireData,
    ChangePtpl,
    Command,
    GenericStatus,
    IdentifyNamespace,
    IoOpcode,
    OptionalNvmCommands,
    RegisterAction,
    RegisterData,
    RegisteredController,
    ReleaseAction,
    ReleaseData,
    ReservationAcquire,
    ReservationCapabilities,
    ReservationRegister,
    ReservationRelease,
    ReservationReport,
    ReservationStatus,
    ReservationType,
    SglDescriptor,
    SpecError,
)

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, (1 << 64) - 1)
HOST_A = uuid.UUID("11111111-2222-4333-8444-555555555555")


def cdw10_of(cmd: Command) -> int:
    return int.from_bytes(cmd.encode()[40:44], "little")


# ------------------------------------------------------------------ opcodes and statuses


def test_reservation_opcodes_are_those_of_the_nvm_command_set() -> None:
    opcodes = [IoOpcode.RESERVATION_REGISTER, IoOpcode.RESERVATION_REPORT]
    opcodes += [IoOpcode.RESERVATION_ACQUIRE, IoOpcode.RESERVATION_RELEASE]
    assert [int(op) for op in opcodes] == [0x0D, 0x0E, 0x11, 0x15]


def test_reservation_statuses_are_generic_83h_and_18h() -> None:
    assert int(GenericStatus.RESERVATION_CONFLICT) == 0x83
    assert int(GenericStatus.HOST_ID_INCONSISTENT_FORMAT) == 0x18


def test_reservation_types_are_numbered_one_to_six() -> None:
    assert [int(t) for t in ReservationType] == [1, 2, 3, 4, 5, 6]
    assert [t.all_registrants for t in ReservationType] == [False] * 4 + [True] * 2


def test_oncs_bit_5_and_rescap_bits_are_where_the_spec_puts_them() -> None:
    assert OptionalNvmCommands.RESERVATIONS == 1 << 5
    assert int(ReservationCapabilities.PERSIST_THROUGH_POWER_LOSS) == 1
    assert ReservationCapabilities.all_types() == 0xFE
    raw = IdentifyNamespace(nsze=1, ncap=1, nuse=1, rescap=0xFF).encode()
    assert raw[31] == 0xFF


# ------------------------------------------------------------------ Register


def test_register_cdw10_packs_rrega_iekey_and_cptpl() -> None:
    cmd = ReservationRegister(RegisterAction.REPLACE, iekey=True, cptpl=ChangePtpl.SET).to_command(
        cid=7, nsid=1
    )
    raw = cmd.encode()
    assert raw[0] == 0x0D
    assert cdw10_of(cmd) == 0b010 | 1 << 3 | 3 << 30
    assert cmd.sgl == SglDescriptor.in_capsule(16)


def test_register_reads_its_fields_from_any_cdw10() -> None:
    cmd = Command(0x0D, cdw10=0xFFFF_FFFF)
    assert ReservationRegister.from_command(cmd) == ReservationRegister(7, True, 3)


def test_register_data_is_crkey_then_nrkey_little_endian() -> None:
    data = RegisterData(crkey=0x0102030405060708, nrkey=0x1112131415161718).encode()
    assert data == bytes(range(8, 0, -1)) + bytes(range(0x18, 0x10, -1))
    assert RegisterData.decode(data) == RegisterData(0x0102030405060708, 0x1112131415161718)


@pytest.mark.parametrize("size", [0, 8, 15, 17, 32])
def test_register_data_of_the_wrong_size_is_refused(size: int) -> None:
    with pytest.raises(SpecError):
        RegisterData.decode(bytes(size))


def test_a_key_beyond_64_bits_does_not_encode() -> None:
    with pytest.raises(SpecError):
        RegisterData(nrkey=1 << 64).encode()


# ------------------------------------------------------------------ Acquire and Release


def test_acquire_cdw10_packs_racqa_iekey_and_rtype() -> None:
    cmd = ReservationAcquire(AcquireAction.PREEMPT, ReservationType.EXCLUSIVE_ACCESS).to_command(
        cid=1, nsid=1
    )
    assert cmd.encode()[0] == 0x11
    assert cdw10_of(cmd) == 0x0201
    assert ReservationAcquire.from_command(Command(0x11, cdw10=0xFF0F)) == ReservationAcquire(
        7, 0xFF, True
    )


def test_acquire_data_is_crkey_then_prkey() -> None:
    assert AcquireData(1, 2).encode() == struct.pack("<QQ", 1, 2)
    assert AcquireData.decode(struct.pack("<QQ", 3, 4)) == AcquireData(3, 4)


def test_release_cdw10_packs_rrela_iekey_and_rtype_and_its_data_is_one_key() -> None:
    cmd = ReservationRelease(ReleaseAction.CLEAR, ReservationType.WRITE_EXCLUSIVE).to_command(
        cid=1, nsid=1
    )
    assert cmd.encode()[0] == 0x15
    assert cdw10_of(cmd) == 0x0101
    assert cmd.sgl.length == 8
    assert ReleaseData(0xAB).encode() == struct.pack("<Q", 0xAB)
    with pytest.raises(SpecError):
        ReleaseData.decode(bytes(16))


# ------------------------------------------------------------------ Report


def test_report_cdw10_is_numd_and_cdw11_bit_0_is_eds() -> None:
    cmd = ReservationReport.for_bytes(4096, eds=True).to_command(cid=1, nsid=1)
    raw = cmd.encode()
    assert raw[0] == 0x0E
    assert struct.unpack_from("<II", raw, 40) == (1023, 1)
    assert cmd.sgl == SglDescriptor.transport(4096)
    assert ReservationReport.from_command(Command(0x0E, cdw10=15, cdw11=0)) == ReservationReport(
        15, False
    )
    assert ReservationReport(15).length == 64


@pytest.mark.parametrize("length", [0, -4, 6])
def test_a_report_length_that_is_not_whole_dwords_is_refused(length: int) -> None:
    with pytest.raises(SpecError):
        ReservationReport.for_bytes(length)


def test_report_to_command_keeps_an_explicit_sgl() -> None:
    sgl = SglDescriptor.transport(64)
    assert ReservationReport(15).to_command(1, 1, sgl).sgl is sgl
    assert ReservationReport(15).to_command(1, 1, NO_DATA).sgl == SglDescriptor.transport(64)


# ------------------------------------------------------------------ Reservation Status


def sample_status() -> ReservationStatus:
    return ReservationStatus(
        generation=0x01020304,
        rtype=ReservationType.EXCLUSIVE_ACCESS,
        ptpls=True,
        registrants=(
            RegisteredController(0xFFFF, True, HOST_A.bytes, 0xAA),
            RegisteredController(0x0002, False, bytes(range(16)), 0xBB),
        ),
    )


def test_extended_status_has_a_64_byte_header_and_64_byte_entries() -> None:
    raw = sample_status().encode(extended=True)
    assert len(raw) == RESERVATION_STATUS_EXT_HEADER_SIZE + 2 * 64
    assert raw[0:4] == bytes([4, 3, 2, 1])  # GEN
    assert raw[4] == 2  # RTYPE
    assert raw[5:7] == bytes([2, 0])  # REGCTL
    assert raw[7:9] == bytes(2)
    assert raw[9] == 1  # PTPLS
    assert raw[10:64] == bytes(54)
    first = raw[64:128]
    assert first[0:2] == bytes([0xFF, 0xFF])  # CNTLID
    assert first[2] == 1  # RCSTS: holds the reservation
    assert first[3:8] == bytes(5)
    assert first[8:16] == (0xAA).to_bytes(8, "little")  # RKEY
    assert first[16:32] == HOST_A.bytes  # HOSTID (128 bits)
    assert first[32:64] == bytes(32)
    second = raw[128:192]
    assert second[2] == 0
    assert second[16:32] == bytes(range(16))


def test_standard_status_has_a_24_byte_header_and_24_byte_entries_hostid_before_rkey() -> None:
    status = ReservationStatus(
        generation=5,
        rtype=1,
        registrants=(RegisteredController(3, True, bytes(range(1, 9)), 0x77),),
    )
    raw = status.encode(extended=False)
    assert len(raw) == RESERVATION_STATUS_HEADER_SIZE + 24
    assert raw[5:7] == bytes([1, 0])
    entry = raw[24:48]
    assert entry[0:2] == bytes([3, 0])
    assert entry[2] == 1
    assert entry[8:16] == bytes(range(1, 9))  # HOSTID (64 bits)
    assert entry[16:24] == (0x77).to_bytes(8, "little")  # RKEY


def test_a_host_identifier_of_the_wrong_width_for_the_format_does_not_encode() -> None:
    with pytest.raises(SpecError):
        sample_status().encode(extended=False)


def test_a_report_cut_short_keeps_regctl_and_the_whole_entries_that_fit() -> None:
    raw = sample_status().encode()
    cut = ReservationStatus.decode(raw[: 64 + 64 + 10])
    assert cut.regctl == 2
    assert len(cut.registrants) == 1
    assert cut.registrants[0].hostid == HOST_A.bytes


def test_a_report_shorter_than_its_header_is_refused() -> None:
    with pytest.raises(SpecError):
        ReservationStatus.decode(bytes(63))
    with pytest.raises(SpecError):
        ReservationStatus.decode(bytes(23), extended=False)


def test_holders_are_the_registrants_with_rcsts_bit_0() -> None:
    assert [h.rkey for h in sample_status().holders] == [0xAA]


registrants_ext = st.lists(
    st.builds(
        RegisteredController,
        st.integers(0, 0xFFFF),
        st.booleans(),
        st.binary(min_size=16, max_size=16),
        u64,
    ),
    max_size=5,
)


@given(gen=u32, rtype=u8, ptpls=st.booleans(), regs=registrants_ext)
def test_extended_status_round_trips(
    gen: int, rtype: int, ptpls: bool, regs: list[RegisteredController]
) -> None:
    status = ReservationStatus(gen, rtype, ptpls, tuple(regs))
    assert ReservationStatus.decode(status.encode()) == status


@given(
    rrega=st.integers(0, 7),
    iekey=st.booleans(),
    cptpl=st.integers(0, 3),
    cid=st.integers(0, 0xFFFF),
)
def test_register_command_round_trips(rrega: int, iekey: bool, cptpl: int, cid: int) -> None:
    reg = ReservationRegister(rrega, iekey, cptpl)
    assert ReservationRegister.from_command(Command.decode(reg.to_command(cid, 1).encode())) == reg


@given(racqa=st.integers(0, 7), rtype=u8, iekey=st.booleans())
def test_acquire_and_release_commands_round_trip(racqa: int, rtype: int, iekey: bool) -> None:
    acq = ReservationAcquire(racqa, rtype, iekey)
    assert ReservationAcquire.from_command(Command.decode(acq.to_command(1, 1).encode())) == acq
    rel = ReservationRelease(racqa, rtype, iekey)
    assert ReservationRelease.from_command(Command.decode(rel.to_command(1, 1).encode())) == rel


@given(a=u64, b=u64)
def test_key_data_round_trips(a: int, b: int) -> None:
    assert RegisterData.decode(RegisterData(a, b).encode()) == RegisterData(a, b)
    assert AcquireData.decode(AcquireData(a, b).encode()) == AcquireData(a, b)
    assert ReleaseData.decode(ReleaseData(a).encode()) == ReleaseData(a)


@settings(max_examples=60)
@given(raw=st.binary(max_size=400), extended=st.booleans())
def test_any_bytes_give_a_status_or_spec_error(raw: bytes, extended: bool) -> None:
    try:
        decoded = ReservationStatus.decode(raw, extended=extended)
    except SpecError:
        return
    assert len(decoded.registrants) <= decoded.regctl


@settings(max_examples=40)
@given(raw=st.binary(max_size=24))
def test_any_bytes_give_key_data_or_spec_error(raw: bytes) -> None:
    for decode in (RegisterData.decode, AcquireData.decode, ReleaseData.decode):
        try:
            decode(raw)
        except SpecError:
            pass
