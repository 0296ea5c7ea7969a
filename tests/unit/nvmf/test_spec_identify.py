"""Identify data against NVMe Base 1.4 Figures 245-249 and NVMe-oF 1.1 Figure 28."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    IdentifyController,
    IdentifyNamespace,
    LbaFormat,
    NamespaceIdDescriptor,
    NamespaceIdType,
    SpecError,
    decode_namespace_id_descriptors,
    decode_namespace_list,
    encode_namespace_id_descriptors,
    encode_namespace_list,
)

# (field, byte offset, size in bytes) written from the spec's figure, independently of
# the layout table in the code.
CONTROLLER_FIELDS = [
    ("vid", 0, 2),
    ("ssvid", 2, 2),
    ("rab", 72, 1),
    ("ieee", 73, 3),
    ("cmic", 76, 1),
    ("mdts", 77, 1),
    ("cntlid", 78, 2),
    ("ver", 80, 4),
    ("rtd3r", 84, 4),
    ("rtd3e", 88, 4),
    ("oaes", 92, 4),
    ("ctratt", 96, 4),
    ("oacs", 256, 2),
    ("acl", 258, 1),
    ("aerl", 259, 1),
    ("frmw", 260, 1),
    ("lpa", 261, 1),
    ("elpe", 262, 1),
    ("npss", 263, 1),
    ("kas", 320, 2),
    ("anatt", 342, 1),
    ("anacap", 343, 1),
    ("anagrpmax", 344, 4),
    ("nanagrpid", 348, 4),
    ("sqes", 512, 1),
    ("cqes", 513, 1),
    ("maxcmd", 514, 2),
    ("nn", 516, 4),
    ("oncs", 520, 2),
    ("fuses", 522, 2),
    ("fna", 524, 1),
    ("vwc", 525, 1),
    ("awun", 526, 2),
    ("awupf", 528, 2),
    ("sgls", 536, 4),
    ("mnan", 540, 4),
    ("ioccsz", 1792, 4),
    ("iorcsz", 1796, 4),
    ("icdoff", 1800, 2),
    ("fcatt", 1802, 1),
    ("msdbd", 1803, 1),
    ("ofcs", 1804, 2),
]

NAMESPACE_FIELDS = [
    ("nsze", 0, 8),
    ("ncap", 8, 8),
    ("nuse", 16, 8),
    ("nsfeat", 24, 1),
    ("nmic", 30, 1),
    ("dlfeat", 33, 1),
    ("nawupf", 36, 2),
    ("npwg", 64, 2),
    ("anagrpid", 92, 4),
    ("nvmsetid", 100, 2),
]


def _pattern(size: int) -> int:
    """A value whose little-endian bytes are 1, 2, 3, ... so misplacement shows."""
    return int.from_bytes(bytes(range(1, size + 1)), "little")


@pytest.mark.parametrize(("name", "offset", "size"), CONTROLLER_FIELDS)
def test_identify_controller_puts_each_integer_field_at_its_offset(
    name: str, offset: int, size: int
) -> None:
    raw = IdentifyController(**{name: _pattern(size)}).encode()  # type: ignore[arg-type]
    expected = bytearray(4096)
    expected[4:72] = b" " * 68  # SN, MN, FR: empty text is all spaces
    expected[offset : offset + size] = bytes(range(1, size + 1))
    assert raw == bytes(expected)


def test_identify_controller_text_fields_are_space_padded_ascii_at_4_24_64() -> None:
    raw = IdentifyController(sn="SN1", mn="Mayastor", fr="1.0").encode()
    assert raw[4:24] == b"SN1".ljust(20, b" ")
    assert raw[24:64] == b"Mayastor".ljust(40, b" ")
    assert raw[64:72] == b"1.0".ljust(8, b" ")


def test_identify_controller_subnqn_is_nul_padded_at_768() -> None:
    nqn = "nqn.2019-05.io.openebs:volume"
    raw = IdentifyController(subnqn=nqn).encode()
    assert raw[768:1024] == nqn.encode().ljust(256, b"\x00")


def test_identify_controller_text_that_does_not_fit_is_refused() -> None:
    with pytest.raises(SpecError, match="mn"):
        IdentifyController(mn="x" * 41).encode()
    with pytest.raises(SpecError, match="ASCII"):
        IdentifyController(sn="s\u00e9rie").encode()


def test_identify_controller_decodes_space_padded_text() -> None:
    raw = bytearray(4096)
    raw[24:64] = b"Some Model".ljust(40, b" ")
    assert IdentifyController.decode(bytes(raw)).mn == "Some Model"


def test_identify_controller_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(SpecError, match="4096"):
        IdentifyController.decode(bytes(4095))


printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@given(
    st.builds(
        IdentifyController,
        vid=st.integers(0, 0xFFFF),
        sn=printable,
        mn=printable,
        fr=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8),
        ieee=st.integers(0, 0xFFFFFF),
        cntlid=st.integers(0, 0xFFFF),
        ver=st.integers(0, 0xFFFF_FFFF),
        nn=st.integers(0, 0xFFFF_FFFF),
        fguid=st.binary(min_size=16, max_size=16),
        subnqn=st.text(max_size=50).filter(lambda s: "\x00" not in s).map(str.rstrip),
    )
)
def test_identify_controller_round_trips(ctrl: IdentifyController) -> None:
    assert IdentifyController.decode(ctrl.encode()) == ctrl


@pytest.mark.parametrize(("name", "offset", "size"), NAMESPACE_FIELDS)
def test_identify_namespace_puts_each_integer_field_at_its_offset(
    name: str, offset: int, size: int
) -> None:
    ns = dataclasses.replace(IdentifyNamespace(0, 0, 0), **{name: _pattern(size)})  # type: ignore[arg-type]
    raw = ns.encode()
    assert raw[offset : offset + size] == bytes(range(1, size + 1))


def test_identify_namespace_flbas_nlbaf_and_lba_formats_sit_at_26_25_and_128() -> None:
    ns = IdentifyNamespace(
        nsze=2048, ncap=2048, nuse=2048, lbaf=(LbaFormat(9), LbaFormat(12, ms=8, rp=2)), flbas=1
    )
    raw = ns.encode()
    assert raw[25] == 1  # NLBAF, 0-based
    assert raw[26] == 1  # FLBAS
    assert raw[128:132] == bytes([0, 0, 9, 0])  # LBAF0: MS, LBADS, RP
    assert raw[132:136] == bytes([8, 0, 12, 2])  # LBAF1
    assert ns.block_size == 4096


def test_identify_namespace_nguid_and_eui64_sit_at_104_and_120() -> None:
    ns = IdentifyNamespace(1, 1, 1, nguid=bytes(range(16)), eui64=bytes(range(8, 16)))
    raw = ns.encode()
    assert raw[104:120] == bytes(range(16))
    assert raw[120:128] == bytes(range(8, 16))


def test_identify_namespace_flbas_must_name_a_present_format() -> None:
    with pytest.raises(SpecError, match="FLBAS"):
        IdentifyNamespace(1, 1, 1, flbas=1).encode()


def test_lba_format_for_a_block_size_is_its_power_of_two() -> None:
    assert LbaFormat.for_block_size(512) == LbaFormat(9)
    assert LbaFormat.for_block_size(4096).block_size == 4096
    with pytest.raises(SpecError):
        LbaFormat.for_block_size(1000)


@given(
    st.integers(0, (1 << 64) - 1),
    st.lists(
        st.builds(LbaFormat, st.integers(9, 16), st.integers(0, 64), st.integers(0, 3)),
        min_size=1,
        max_size=16,
    ),
    st.data(),
)
def test_identify_namespace_round_trips(
    nsze: int, formats: list[LbaFormat], data: st.DataObject
) -> None:
    flbas = data.draw(st.integers(0, len(formats) - 1))
    ns = IdentifyNamespace(nsze, nsze, 0, lbaf=tuple(formats), flbas=flbas, anagrpid=1)
    assert IdentifyNamespace.decode(ns.encode()) == ns


def test_the_active_namespace_list_holds_ascending_nsids_above_the_given_one() -> None:
    raw = encode_namespace_list([5, 1, 3, 9], greater_than=1)
    assert len(raw) == 4096
    assert raw[:16] == bytes([3, 0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0])
    assert decode_namespace_list(raw) == [3, 5, 9]


def test_the_active_namespace_list_holds_at_most_1024_nsids() -> None:
    assert len(decode_namespace_list(encode_namespace_list(range(1, 2000)))) == 1024


def test_nsid_zero_is_not_a_namespace() -> None:
    with pytest.raises(SpecError):
        encode_namespace_list([0, 1], greater_than=-1)


def test_namespace_id_descriptors_have_the_spec_layout() -> None:
    ns_uuid = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    raw = encode_namespace_id_descriptors(
        [
            NamespaceIdDescriptor.eui64(bytes(range(8))),
            NamespaceIdDescriptor.nguid(bytes(range(16))),
            NamespaceIdDescriptor.uuid(ns_uuid),
        ]
    )
    assert raw[0:4] == bytes([0x01, 8, 0, 0])
    assert raw[4:12] == bytes(range(8))
    assert raw[12:16] == bytes([0x02, 16, 0, 0])
    assert raw[16:32] == bytes(range(16))
    assert raw[32:36] == bytes([0x03, 16, 0, 0])
    assert raw[36:52] == ns_uuid.bytes
    assert raw[52:] == bytes(4096 - 52)
    assert [d.nidt for d in decode_namespace_id_descriptors(raw)] == [1, 2, 3]


def test_a_namespace_id_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(SpecError):
        encode_namespace_id_descriptors([NamespaceIdDescriptor(NamespaceIdType.UUID, bytes(8))])


def test_a_descriptor_running_past_the_end_is_refused() -> None:
    raw = bytearray(4096)
    for at in range(0, 4096, 259):  # unknown type 05h, 255 bytes each: the 16th overflows
        raw[at : at + 2] = bytes([0x05, 255])
    with pytest.raises(SpecError, match="past the end"):
        decode_namespace_id_descriptors(bytes(raw))
