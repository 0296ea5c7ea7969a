"""The SQE, its SGL descriptor, the CQE and the NVM/admin command fields against the
byte layouts of NVMe Base 1.4 (Figures 105, 113, 121) and the commands' CDW tables."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    NO_DATA,
    Abort,
    AdminOpcode,
    Command,
    Completion,
    DatasetManagement,
    DsmRange,
    GenericStatus,
    GetFeatures,
    GetLogPage,
    Identify,
    IoOpcode,
    NvmeStatus,
    Read,
    SetFeatures,
    SglDescriptor,
    SpecError,
    StatusCodeType,
    Write,
    WriteZeroes,
    decode_dsm_ranges,
    encode_completion,
    encode_dsm_ranges,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, (1 << 64) - 1)


# ------------------------------------------------------------------ SQE and SGL


def test_a_read_sqe_has_the_spec_layout() -> None:
    cmd = Read(slba=0x1122334455667788, nlb=7, fua=True).to_command(
        cid=0xABCD, nsid=1, sgl=SglDescriptor.transport(4096)
    )
    raw = cmd.encode()
    assert len(raw) == 64
    assert raw[0] == 0x02  # opcode
    assert raw[1] == 0x40  # PSDT 01b (SGL), FUSE 0
    assert raw[2:4] == bytes([0xCD, 0xAB])  # CID
    assert raw[4:8] == bytes([1, 0, 0, 0])  # NSID
    assert raw[8:24] == bytes(16)  # CDW2-3, MPTR
    assert raw[24:32] == bytes(8)  # SGL address
    assert raw[32:36] == (4096).to_bytes(4, "little")  # SGL length
    assert raw[36:39] == bytes(3)
    assert raw[39] == 0x5A  # transport data block, transport-specific subtype
    assert raw[40:48] == bytes([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])  # SLBA
    assert raw[48:50] == bytes([7, 0])  # NLB, 0-based
    assert raw[51] == 0x40  # FUA: CDW12 bit 30
    assert raw[52:64] == bytes(12)


def test_an_in_capsule_sgl_is_a_data_block_with_the_offset_subtype() -> None:
    raw = SglDescriptor.in_capsule(1024).encode()
    assert raw == bytes(8) + (1024).to_bytes(4, "little") + bytes(3) + b"\x01"
    assert SglDescriptor.decode(raw).is_in_capsule


def test_a_command_without_data_has_a_zero_length_transport_sgl() -> None:
    assert NO_DATA.encode() == bytes(15) + b"\x5a"
    assert NO_DATA.is_transport


def test_an_sqe_that_is_not_64_bytes_is_refused() -> None:
    with pytest.raises(SpecError, match="64"):
        Command.decode(bytes(63))


def test_a_field_that_does_not_fit_is_refused_when_encoding() -> None:
    with pytest.raises(SpecError):
        Command(IoOpcode.READ, cid=0x10000).encode()
    with pytest.raises(SpecError):
        Command(IoOpcode.READ, fuse=4).encode()


def test_a_fabrics_command_keeps_fctype_in_byte_4() -> None:
    raw = bytearray(64)
    raw[0] = 0x7F
    raw[4] = 0x04
    cmd = Command.decode(bytes(raw))
    assert cmd.is_fabrics
    assert cmd.fctype == 0x04


commands = st.builds(
    Command,
    opcode=u8,
    cid=u16,
    nsid=u32,
    sgl=st.builds(SglDescriptor, u64, u32, st.integers(0, 15), st.integers(0, 15)),
    cdw10=u32,
    cdw11=u32,
    cdw12=u32,
    cdw13=u32,
    cdw14=u32,
    cdw15=u32,
    fuse=st.integers(0, 3),
    psdt=st.integers(0, 3),
    cdw2=u32,
    cdw3=u32,
    mptr=u64,
)


@given(commands)
def test_any_command_round_trips_through_its_64_bytes(cmd: Command) -> None:
    assert Command.decode(cmd.encode()) == cmd


@given(st.binary(min_size=64, max_size=64))
def test_any_64_bytes_decode_and_encode_back_except_reserved_bytes(raw: bytes) -> None:
    again = bytearray(Command.decode(raw).encode())
    expected = bytearray(raw)
    expected[1] &= 0xC3  # bits 13:10 of CDW0 are reserved
    expected[36:39] = bytes(3)  # SGL reserved bytes
    assert again == expected


# ------------------------------------------------------------------ CQE


def test_a_completion_has_the_spec_layout() -> None:
    status = NvmeStatus(StatusCodeType.GENERIC, GenericStatus.LBA_OUT_OF_RANGE, dnr=True)
    raw = Completion(
        cid=0x1234, status=status, dw0=0x11223344, dw1=0x55667788, sqhd=9, sqid=2
    ).encode()
    assert raw == (
        bytes([0x44, 0x33, 0x22, 0x11])  # DW0
        + bytes([0x88, 0x77, 0x66, 0x55])  # DW1
        + bytes([9, 0])  # SQHD
        + bytes([2, 0])  # SQID
        + bytes([0x34, 0x12])  # CID
        + bytes([0x00, 0x81])  # phase 0, SC 80h in bits 8:1, DNR in bit 15
    )


def test_the_phase_tag_is_bit_0_of_the_status_half() -> None:
    raw = encode_completion(1, 0, phase=True)
    assert raw[14:16] == bytes([1, 0])
    assert Completion.decode(raw).phase


def test_a_cqe_that_is_not_16_bytes_is_refused() -> None:
    with pytest.raises(SpecError, match="16"):
        Completion.decode(bytes(17))


@given(
    st.builds(
        Completion,
        cid=u16,
        status=st.builds(
            NvmeStatus,
            st.integers(0, 7),
            u8,
            dnr=st.booleans(),
            more=st.booleans(),
            crd=st.integers(0, 3),
        ),
        dw0=u32,
        dw1=u32,
        sqhd=u16,
        sqid=u16,
        phase=st.booleans(),
    )
)
def test_any_completion_round_trips_through_its_16_bytes(cqe: Completion) -> None:
    assert Completion.decode(cqe.encode()) == cqe


def test_an_eight_byte_result_spans_dw0_and_dw1() -> None:
    assert Completion(1, dw0=0x89ABCDEF, dw1=0x01234567).result64 == 0x0123456789ABCDEF


# ------------------------------------------------------------------ NVM commands


@given(u64, u16, st.booleans())
def test_read_and_write_fields_round_trip(slba: int, nlb: int, fua: bool) -> None:
    for klass in (Read, Write):
        cmd = klass(slba, nlb, fua).to_command(1, 1, SglDescriptor.transport(512))
        assert klass.from_command(Command.decode(cmd.encode())) == klass(slba, nlb, fua)


def test_nlb_is_zero_based() -> None:
    assert Write(0, 0).nblocks == 1
    with pytest.raises(SpecError, match="NLB"):
        Write(0, 0x10000).to_command(1, 1, NO_DATA)


def test_write_zeroes_puts_deac_in_bit_25_and_fua_in_bit_30_of_cdw12() -> None:
    raw = WriteZeroes(slba=8, nlb=15, deac=True, fua=True).to_command(2, 1).encode()
    assert raw[0] == 0x08
    cdw12 = struct.unpack_from("<I", raw, 48)[0]
    assert cdw12 == 15 | 1 << 25 | 1 << 30
    assert WriteZeroes.from_command(Command.decode(raw)) == WriteZeroes(8, 15, True, True)


def test_dataset_management_ranges_have_the_spec_layout() -> None:
    data = encode_dsm_ranges([DsmRange(slba=0x100, nblocks=8, attributes=0xA)])
    assert data == bytes([0xA, 0, 0, 0]) + bytes([8, 0, 0, 0]) + (0x100).to_bytes(8, "little")
    assert decode_dsm_ranges(data, 1) == [DsmRange(0x100, 8, 0xA)]


def test_dataset_management_deallocate_is_bit_2_of_cdw11() -> None:
    cmd = DatasetManagement(nr=1, deallocate=True).to_command(3, 1)
    assert (cmd.cdw10, cmd.cdw11) == (1, 4)
    dsm = DatasetManagement.from_command(cmd)
    assert (dsm.nranges, dsm.data_length, dsm.deallocate) == (2, 32, True)


def test_dsm_data_shorter_than_its_ranges_is_refused() -> None:
    with pytest.raises(SpecError):
        decode_dsm_ranges(bytes(31), 2)


def test_dsm_takes_one_to_256_ranges() -> None:
    with pytest.raises(SpecError):
        encode_dsm_ranges([])
    with pytest.raises(SpecError):
        encode_dsm_ranges([DsmRange(0, 1)] * 257)


# ------------------------------------------------------------------ admin commands


def test_get_log_page_has_the_spec_cdw_layout() -> None:
    glp = GetLogPage(lid=0x70, numd=0x12345, offset=0x1_0000_0004, lsp=1, rae=True, lsi=9)
    raw = glp.to_command(4, 0, SglDescriptor.transport(glp.length)).encode()
    assert raw[0] == 0x02
    assert raw[40] == 0x70  # LID
    assert raw[41] == 0x81  # LSP 1, RAE (bit 15 of CDW10)
    assert raw[42:44] == bytes([0x45, 0x23])  # NUMDL
    assert raw[44:46] == bytes([0x01, 0x00])  # NUMDU
    assert raw[46:48] == bytes([9, 0])  # LSI
    assert raw[48:56] == (0x1_0000_0004).to_bytes(8, "little")  # LPO
    assert GetLogPage.from_command(Command.decode(raw)) == glp


def test_get_log_page_length_is_numd_plus_one_dwords() -> None:
    assert GetLogPage(lid=2, numd=127).length == 512
    assert GetLogPage.for_bytes(2, 512) == GetLogPage(lid=2, numd=127)
    with pytest.raises(SpecError):
        GetLogPage.for_bytes(2, 510)


def test_identify_has_cns_in_byte_40_and_cntid_in_bytes_42_43() -> None:
    raw = Identify(cns=0x02, cntid=0x0102).to_command(5, 7, SglDescriptor.transport(4096))
    data = raw.encode()
    assert (data[0], data[40], data[42:44]) == (0x06, 0x02, bytes([2, 1]))
    assert Identify.from_command(raw) == Identify(2, 0x0102)


def test_set_features_puts_save_in_bit_31_and_the_value_in_cdw11() -> None:
    cmd = SetFeatures(fid=0x07, value=0x0003_0003, save=True).to_command(6)
    assert (cmd.opcode, cmd.cdw10, cmd.cdw11) == (AdminOpcode.SET_FEATURES, 0x8000_0007, 0x30003)
    assert SetFeatures.from_command(cmd) == SetFeatures(7, 0x30003, True)


def test_get_features_puts_select_in_bits_10_8() -> None:
    cmd = GetFeatures(fid=0x0F, sel=1).to_command(6)
    assert cmd.cdw10 == 0x010F
    assert GetFeatures.from_command(cmd) == GetFeatures(0x0F, 1)


def test_abort_names_the_queue_and_command() -> None:
    cmd = Abort(sqid=2, cid=0x55).to_command(7)
    assert (cmd.opcode, cmd.cdw10) == (AdminOpcode.ABORT, 0x0055_0002)
    assert Abort.from_command(cmd) == Abort(2, 0x55)


@given(st.integers(0, 0xFF), u32, u64, st.integers(0, 0x7F), st.booleans(), u16)
def test_get_log_page_fields_round_trip(
    lid: int, numd: int, offset: int, lsp: int, rae: bool, lsi: int
) -> None:
    glp = GetLogPage(lid, numd, offset, lsp, rae, lsi)
    assert GetLogPage.from_command(Command.decode(glp.to_command(1, 0, NO_DATA).encode())) == glp
