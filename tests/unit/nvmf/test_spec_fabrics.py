"""Fabrics Connect (command and 1024-byte data), Property Get/Set and the controller
properties, against NVMe-oF 1.1 Figures 19-20 and NVMe Base 1.4 section 3.1."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    CONNECT_DATA_LAYOUT,
    DISCOVERY_NQN,
    DYNAMIC_CNTLID,
    VS_1_4,
    AdminQueueAttributes,
    Command,
    Connect,
    ConnectData,
    ControllerCapabilities,
    ControllerConfiguration,
    ControllerStatus,
    PropertyGet,
    PropertyOffset,
    PropertySet,
    ShutdownNotification,
    ShutdownStatus,
    SpecError,
    connect_invalid_parameter_dw0,
    connect_success_dw0,
    version,
)

HOSTID = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:12345678-9abc-def0-1234-56789abcdef0"
SUBNQN = "nqn.2019-05.io.openebs:7e4b2f42-7b4a-4a4b-9c8e-1d7f0c9a1b2c"


# ------------------------------------------------------------------ Connect


def test_connect_has_the_spec_layout() -> None:
    raw = Connect(qid=3, sqsize=127, kato=0, cattr=0x04).to_command(cid=9).encode()
    assert raw[0] == 0x7F  # Fabrics opcode
    assert raw[1] == 0x40  # SGL
    assert raw[2:4] == bytes([9, 0])
    assert raw[4] == 0x01  # FCTYPE Connect
    assert raw[24:40] == bytes(8) + (1024).to_bytes(4, "little") + bytes(3) + b"\x01"
    assert raw[40:42] == bytes(2)  # RECFMT
    assert raw[42:44] == bytes([3, 0])  # QID
    assert raw[44:46] == bytes([127, 0])  # SQSIZE
    assert raw[46] == 0x04  # CATTR
    assert raw[48:52] == bytes(4)  # KATO


def test_connect_fields_are_read_back() -> None:
    cmd = Command.decode(Connect(qid=0, sqsize=31, kato=120_000).to_command(1).encode())
    connect = Connect.from_command(cmd)
    assert connect == Connect(0, 31, 120_000)
    assert connect.queue_depth == 32
    assert cmd.fctype == 0x01


def test_connect_data_has_hostid_cntlid_subnqn_and_hostnqn_at_their_offsets() -> None:
    raw = ConnectData(HOSTID, DYNAMIC_CNTLID, SUBNQN, HOSTNQN).encode()
    assert len(raw) == 1024
    assert raw[0:16] == HOSTID.bytes
    assert raw[16:18] == bytes([0xFF, 0xFF])
    assert raw[18:256] == bytes(238)
    assert raw[256 : 256 + len(SUBNQN)] == SUBNQN.encode()
    assert raw[256 + len(SUBNQN) : 512] == bytes(256 - len(SUBNQN))
    assert raw[512 : 512 + len(HOSTNQN)] == HOSTNQN.encode()
    assert raw[768:] == bytes(256)


def _connect_data(subnqn: bytes, hostnqn: bytes) -> bytes:
    raw = bytearray(1024)
    raw[0:16] = HOSTID.bytes
    raw[16:18] = (1).to_bytes(2, "little")
    raw[256 : 256 + len(subnqn)] = subnqn
    raw[512 : 512 + len(hostnqn)] = hostnqn
    return bytes(raw)


def test_connect_data_with_nul_padded_nqns_parses() -> None:
    data = ConnectData.decode(_connect_data(SUBNQN.encode(), HOSTNQN.encode()))
    assert data == ConnectData(HOSTID, 1, SUBNQN, HOSTNQN)


def test_connect_data_with_space_padded_nqns_parses() -> None:
    raw = _connect_data(SUBNQN.encode().ljust(256, b" "), HOSTNQN.encode().ljust(256, b" "))
    data = ConnectData.decode(raw)
    assert (data.subnqn, data.hostnqn) == (SUBNQN, HOSTNQN)


def test_connect_data_reads_an_nqn_only_up_to_its_nul() -> None:
    raw = _connect_data(DISCOVERY_NQN.encode() + b"\x00garbage", HOSTNQN.encode())
    assert ConnectData.decode(raw).subnqn == DISCOVERY_NQN


def test_an_nqn_that_is_not_utf8_is_refused_with_its_offset() -> None:
    with pytest.raises(SpecError) as caught:
        ConnectData.decode(_connect_data(SUBNQN.encode(), b"nqn.\xff\xfe"))
    assert caught.value.offset == 512
    assert CONNECT_DATA_LAYOUT.offset("hostnqn") == 512


def test_connect_data_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(SpecError, match="1024"):
        ConnectData.decode(bytes(1000))


def test_an_nqn_too_long_for_its_field_is_refused_when_encoding() -> None:
    with pytest.raises(SpecError, match="subnqn"):
        ConnectData(HOSTID, 1, "n" * 256, HOSTNQN).encode()


NQN_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60)


@given(st.uuids(), st.integers(0, 0xFFFF), NQN_TEXT, NQN_TEXT)
def test_connect_data_round_trips(hostid: uuid.UUID, cntlid: int, sub: str, host: str) -> None:
    data = ConnectData(hostid, cntlid, sub.rstrip(" "), host.rstrip(" "))
    assert ConnectData.decode(data.encode()) == data


def test_connect_responses_put_cntlid_or_ipo_and_iattr_in_dw0() -> None:
    assert connect_success_dw0(0x21) == 0x21
    assert connect_invalid_parameter_dw0(256, in_data=True) == 0x0001_0100
    assert connect_invalid_parameter_dw0(42, in_data=False) == 42


# ------------------------------------------------------------------ Property Get/Set


def test_property_get_has_attrib_in_byte_40_and_offset_in_byte_44() -> None:
    raw = PropertyGet(PropertyOffset.CAP, size=8).to_command(2).encode()
    assert (raw[0], raw[4], raw[40], raw[44:48]) == (0x7F, 0x04, 0x01, bytes(4))
    raw = PropertyGet(PropertyOffset.CSTS).to_command(2).encode()
    assert (raw[40], raw[44]) == (0x00, 0x1C)
    assert PropertyGet.from_command(Command.decode(raw)) == PropertyGet(0x1C, 4)


def test_property_set_has_the_value_in_bytes_48_to_55() -> None:
    raw = PropertySet(PropertyOffset.CC, 0x00460001).to_command(3).encode()
    assert (raw[4], raw[40], raw[44]) == (0x00, 0x00, 0x14)
    assert raw[48:56] == bytes([0x01, 0x00, 0x46, 0x00, 0, 0, 0, 0])
    assert PropertySet.from_command(Command.decode(raw)) == PropertySet(0x14, 0x00460001, 4)


def test_an_eight_byte_property_set_carries_64_bits() -> None:
    cmd = PropertySet(PropertyOffset.ASQ, 0x1122334455667788, size=8).to_command(3)
    assert PropertySet.from_command(cmd).value == 0x1122334455667788


def test_a_reserved_property_size_is_refused_with_offset_40() -> None:
    cmd = Command(0x7F, 1, 0x04, cdw10=2, cdw11=0x1C)
    with pytest.raises(SpecError) as caught:
        PropertyGet.from_command(cmd)
    assert caught.value.offset == 40


def test_a_four_byte_property_value_over_32_bits_is_refused() -> None:
    with pytest.raises(SpecError):
        PropertySet(PropertyOffset.CC, 1 << 32).to_command(1)


# ------------------------------------------------------------------ registers


def test_vs_1_4_is_major_1_minor_4() -> None:
    assert VS_1_4 == 0x0001_0400
    assert version(1, 3, 1) == 0x0001_0301


def test_cap_fields_sit_at_their_bits() -> None:
    cap = ControllerCapabilities(mqes=127, cqr=True, to=30, css=1)
    assert cap.encode() == 127 | 1 << 16 | 30 << 24 | 1 << 37
    assert ControllerCapabilities.decode(cap.encode()) == cap


def test_cc_as_the_linux_host_writes_it_decodes() -> None:
    cc = ControllerConfiguration.decode(0x00460001)
    assert cc == ControllerConfiguration(en=True, iosqes=6, iocqes=4)
    shutdown = ControllerConfiguration.decode(0x00464001)
    assert shutdown.shn == ShutdownNotification.NORMAL


def test_csts_ready_and_shutdown_complete_sit_at_bits_0_and_3_2() -> None:
    assert ControllerStatus(rdy=True).encode() == 0x1
    assert ControllerStatus(shst=ShutdownStatus.COMPLETE).encode() == 0x8
    assert ControllerStatus.decode(0x3) == ControllerStatus(rdy=True, cfs=True)


def test_aqa_holds_both_admin_queue_sizes() -> None:
    assert AdminQueueAttributes(31, 31).encode() == 0x001F_001F
    assert AdminQueueAttributes.decode(0x001F_001F) == AdminQueueAttributes(31, 31)


def test_a_register_field_that_does_not_fit_is_refused() -> None:
    with pytest.raises(SpecError, match="MQES"):
        ControllerCapabilities(mqes=1 << 16).encode()
    with pytest.raises(SpecError, match="SHN"):
        ControllerConfiguration(shn=4).encode()


@given(
    st.builds(
        ControllerConfiguration,
        st.booleans(),
        st.integers(0, 7),
        st.integers(0, 15),
        st.integers(0, 7),
        st.integers(0, 3),
        st.integers(0, 15),
        st.integers(0, 15),
    )
)
def test_cc_round_trips(cc: ControllerConfiguration) -> None:
    assert ControllerConfiguration.decode(cc.encode()) == cc
