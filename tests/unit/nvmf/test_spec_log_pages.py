"""Log pages against NVMe Base 1.4 Figures 194, 196, 198, 207 and NVMe-oF 1.1 Figures
31-32, and reading any window of a page."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    DISCOVERY_NQN,
    AddressFamily,
    AnaGroupDescriptor,
    AnaLog,
    AnaState,
    DiscoveryLogEntry,
    DiscoveryLogPage,
    ErrorLogEntry,
    SmartLog,
    SpecError,
    SubsystemType,
    data_units,
    encode_changed_namespace_list,
    encode_error_log,
    log_page_window,
)

SUBNQN = "nqn.2019-05.io.openebs:0f6e0d9c-2b7a-4b3e-8a8f-5d4c3b2a1908"


# ------------------------------------------------------------------ discovery


def test_a_discovery_entry_has_the_spec_layout() -> None:
    entry = DiscoveryLogEntry(
        trsvcid="8420",
        traddr="127.0.0.1",
        subnqn=SUBNQN,
        portid=2,
        cntlid=0xFFFF,
        asqsz=32,
    )
    raw = entry.encode()
    assert len(raw) == 1024
    assert raw[0:4] == bytes([0x03, 0x01, 0x02, 0x02])  # TCP, IPv4, NVMe, not required
    assert raw[4:6] == bytes([2, 0])  # PORTID
    assert raw[6:8] == bytes([0xFF, 0xFF])  # CNTLID: dynamic
    assert raw[8:10] == bytes([32, 0])  # ASQSZ
    assert raw[32:64] == b"8420".ljust(32, b" ")  # TRSVCID, space padded
    assert raw[256:512] == SUBNQN.encode().ljust(256, b"\x00")  # SUBNQN
    assert raw[512:768] == b"127.0.0.1".ljust(256, b" ")  # TRADDR, space padded
    assert raw[768] == 0x00  # TSAS: SECTYPE none


def test_the_discovery_page_has_genctr_numrec_recfmt_then_entries_at_1024() -> None:
    entry = DiscoveryLogEntry(
        "4420", "10.0.0.1", DISCOVERY_NQN, subtype=SubsystemType.CURRENT_DISCOVERY
    )
    raw = DiscoveryLogPage(genctr=7, entries=(entry, entry)).encode()
    assert len(raw) == 1024 + 2 * 1024
    assert raw[0:8] == (7).to_bytes(8, "little")
    assert raw[8:16] == (2).to_bytes(8, "little")
    assert raw[16:18] == bytes(2)
    assert raw[18:1024] == bytes(1006)
    assert raw[1024:2048] == entry.encode()
    assert DiscoveryLogPage.decode_header(raw[:1024]) == (7, 2, 0)


text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)


@given(
    st.lists(
        st.builds(
            DiscoveryLogEntry,
            trsvcid=text,
            traddr=text,
            subnqn=text,
            adrfam=st.sampled_from(AddressFamily),
            portid=st.integers(0, 0xFFFF),
        ),
        max_size=4,
    ),
    st.integers(0, (1 << 64) - 1),
)
def test_a_discovery_page_round_trips(entries: list[DiscoveryLogEntry], genctr: int) -> None:
    page = DiscoveryLogPage(genctr, tuple(entries))
    assert DiscoveryLogPage.decode(page.encode()) == page


def test_a_discovery_page_shorter_than_its_numrec_is_refused() -> None:
    raw = DiscoveryLogPage(1, (DiscoveryLogEntry("1", "a", "b"),)).encode()
    with pytest.raises(SpecError, match="too short"):
        DiscoveryLogPage.decode(raw[:1500])


def test_a_transport_address_that_is_not_ascii_is_refused() -> None:
    with pytest.raises(SpecError, match="traddr"):
        DiscoveryLogEntry("4420", "h\u00f4te", SUBNQN).encode()


# ------------------------------------------------------------------ error log


def test_an_error_entry_has_the_spec_layout() -> None:
    raw = ErrorLogEntry(
        error_count=5,
        sqid=1,
        cid=0x22,
        status_field=0x8100,
        parameter_error_location=0x0128,
        lba=0x1000,
        nsid=1,
        trtype=3,
        command_specific=9,
        transport_info=7,
    ).encode()
    assert len(raw) == 64
    assert raw[0:8] == (5).to_bytes(8, "little")
    assert raw[8:10] == bytes([1, 0])
    assert raw[10:12] == bytes([0x22, 0])
    assert raw[12:14] == bytes([0x00, 0x81])
    assert raw[14:16] == bytes([0x28, 0x01])
    assert raw[16:24] == (0x1000).to_bytes(8, "little")
    assert raw[24:28] == bytes([1, 0, 0, 0])
    assert raw[29] == 3
    assert raw[32:40] == (9).to_bytes(8, "little")
    assert raw[40:42] == bytes([7, 0])
    assert raw[42:] == bytes(22)


def test_the_error_log_fills_unused_slots_with_zeroes() -> None:
    page = encode_error_log([ErrorLogEntry(2), ErrorLogEntry(1)], slots=4)
    assert len(page) == 256
    assert ErrorLogEntry.decode(page[64:128]).error_count == 1
    assert page[128:] == bytes(128)
    with pytest.raises(SpecError):
        encode_error_log([ErrorLogEntry(1)] * 5, slots=4)


# ------------------------------------------------------------------ SMART


def test_the_smart_log_has_the_spec_layout() -> None:
    raw = SmartLog(
        critical_warning=0x04,
        temperature=300,
        available_spare=100,
        available_spare_threshold=10,
        percentage_used=1,
        data_units_read=0x0102,
        data_units_written=3,
        host_read_commands=4,
        host_write_commands=5,
        controller_busy_time=6,
        power_cycles=7,
        power_on_hours=8,
        unsafe_shutdowns=9,
        media_errors=10,
        error_log_entries=11,
        warning_temperature_time=12,
        critical_temperature_time=13,
    ).encode()
    assert len(raw) == 512
    assert raw[0] == 0x04
    assert raw[1:3] == (300).to_bytes(2, "little")
    assert raw[3:6] == bytes([100, 10, 1])
    assert raw[32:48] == (0x0102).to_bytes(16, "little")
    for i, offset in enumerate(range(48, 192, 16), start=3):
        assert raw[offset : offset + 16] == i.to_bytes(16, "little"), offset
    assert raw[192:196] == (12).to_bytes(4, "little")
    assert raw[196:200] == (13).to_bytes(4, "little")


def test_data_units_are_thousands_of_512_byte_units_rounded_up() -> None:
    assert data_units(0) == 0
    assert data_units(1) == 1
    assert data_units(512_000) == 1
    assert data_units(512_001) == 2


@given(
    st.builds(
        SmartLog,
        data_units_read=st.integers(0, (1 << 128) - 1),
        power_cycles=st.integers(0, 1 << 100),
    )
)
def test_the_smart_log_round_trips(log: SmartLog) -> None:
    assert SmartLog.decode(log.encode()) == log


# ------------------------------------------------------------------ changed namespaces, ANA


def test_the_changed_namespace_list_is_ascending_nsids() -> None:
    raw = encode_changed_namespace_list([3, 1])
    assert len(raw) == 4096
    assert raw[:12] == bytes([1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0])


def test_more_than_1024_changed_namespaces_is_reported_as_ffffffff() -> None:
    raw = encode_changed_namespace_list(range(1, 1100))
    assert raw[:8] == bytes([0xFF] * 4 + [0] * 4)


def test_the_ana_log_has_the_spec_layout() -> None:
    log = AnaLog(chgcnt=4, groups=(AnaGroupDescriptor(1, AnaState.OPTIMIZED, (1, 2), chgcnt=3),))
    raw = log.encode()
    assert raw[0:8] == (4).to_bytes(8, "little")  # CHGCNT
    assert raw[8:10] == bytes([1, 0])  # NGRPS
    assert raw[10:16] == bytes(6)
    assert raw[16:20] == bytes([1, 0, 0, 0])  # ANAGRPID
    assert raw[20:24] == bytes([2, 0, 0, 0])  # NNSIDS
    assert raw[24:32] == (3).to_bytes(8, "little")  # CHGCNT of the group
    assert raw[32] == 0x01  # ANA state
    assert raw[33:48] == bytes(15)
    assert raw[48:56] == bytes([1, 0, 0, 0, 2, 0, 0, 0])  # NSIDs
    assert len(raw) == 56


def test_the_ana_log_with_groups_only_leaves_out_the_nsids() -> None:
    log = AnaLog(1, (AnaGroupDescriptor(1, AnaState.INACCESSIBLE, (1, 2, 3)),))
    raw = log.encode(groups_only=True)
    assert len(raw) == 48
    assert raw[20:24] == bytes(4)


@given(
    st.lists(
        st.builds(
            AnaGroupDescriptor,
            st.integers(1, 100),
            st.sampled_from(AnaState),
            st.lists(st.integers(1, 1000), max_size=5).map(tuple),
        ),
        max_size=4,
    )
)
def test_the_ana_log_round_trips(groups: list[AnaGroupDescriptor]) -> None:
    log = AnaLog(9, tuple(groups))
    assert AnaLog.decode(log.encode()) == log


def test_a_truncated_ana_log_is_refused() -> None:
    raw = AnaLog(1, (AnaGroupDescriptor(1, AnaState.OPTIMIZED, (1, 2)),)).encode()
    with pytest.raises(SpecError, match="truncated"):
        AnaLog.decode(raw[:-1])


# ------------------------------------------------------------------ windows


def test_a_window_past_the_end_of_the_page_is_zero_filled() -> None:
    assert log_page_window(b"abcdefgh", 4, 8) == b"efgh" + bytes(4)


def test_a_window_offset_that_is_not_a_dword_is_refused() -> None:
    with pytest.raises(SpecError, match="multiple of 4"):
        log_page_window(bytes(64), 2, 4)


def test_a_window_starting_beyond_the_page_is_refused() -> None:
    with pytest.raises(SpecError, match="beyond"):
        log_page_window(bytes(64), 68, 4)


@given(st.binary(min_size=1, max_size=3000), st.data())
def test_windows_cut_anywhere_on_dwords_put_the_page_back_together(
    page: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, (len(page) + 3) // 4 - 1 or 1), max_size=5)))
    edges = [0, *(c * 4 for c in cuts if c * 4 < len(page)), len(page) + (-len(page)) % 4]
    pieces = [log_page_window(page, a, b - a) for a, b in itertools.pairwise(edges)]
    assert b"".join(pieces) == page.ljust(edges[-1], b"\x00")
