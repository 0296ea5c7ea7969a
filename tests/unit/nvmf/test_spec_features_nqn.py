"""Features, async event completions and NQN validation."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    DISCOVERY_NQN,
    AsyncEvent,
    AsyncEventConfig,
    AsyncEventNotice,
    AsyncEventType,
    FeatureId,
    KeepAliveTimer,
    NumberOfQueues,
    SpecError,
    VolatileWriteCache,
    uuid_nqn,
    validate_nqn,
)


def test_feature_identifiers_match_the_spec() -> None:
    assert int(FeatureId.VOLATILE_WRITE_CACHE) == 0x06
    assert int(FeatureId.NUMBER_OF_QUEUES) == 0x07
    assert int(FeatureId.ASYNC_EVENT_CONFIGURATION) == 0x0B
    assert int(FeatureId.KEEP_ALIVE_TIMER) == 0x0F


def test_number_of_queues_is_nsqr_low_and_ncqr_high_both_zero_based() -> None:
    value = NumberOfQueues(nsqr=3, ncqr=7).encode()
    assert value == 0x0007_0003
    queues = NumberOfQueues.decode(value)
    assert (queues.submission_queues, queues.completion_queues) == (4, 8)


def test_a_queue_count_of_ffffh_is_reserved() -> None:
    with pytest.raises(SpecError, match="NSQR"):
        NumberOfQueues(0xFFFF, 0).encode()


@given(st.integers(0, 0xFFFE), st.integers(0, 0xFFFE))
def test_number_of_queues_round_trips(nsqr: int, ncqr: int) -> None:
    assert NumberOfQueues.decode(NumberOfQueues(nsqr, ncqr).encode()) == NumberOfQueues(nsqr, ncqr)


def test_keep_alive_timer_is_milliseconds_in_cdw11() -> None:
    assert KeepAliveTimer(120_000).encode() == 120_000
    assert KeepAliveTimer.decode(5000) == KeepAliveTimer(5000)


def test_volatile_write_cache_enable_is_bit_0() -> None:
    assert VolatileWriteCache(True).encode() == 1
    assert VolatileWriteCache.decode(0xFFFF_FFFE) == VolatileWriteCache(False)


def test_async_event_configuration_bits_match_the_spec() -> None:
    assert AsyncEventConfig.NAMESPACE_ATTRIBUTE == 1 << 8
    assert AsyncEventConfig.ANA_CHANGE == 1 << 11
    assert AsyncEventConfig.DISCOVERY_LOG_CHANGE == 1 << 31


def test_a_namespace_attribute_notice_is_type_2_info_0_log_page_4() -> None:
    event = AsyncEvent.namespace_attribute_changed()
    assert event.encode() == 0x0004_0002
    assert AsyncEvent.decode(0x0004_0002) == event
    assert event.type == AsyncEventType.NOTICE
    assert event.info == AsyncEventNotice.NAMESPACE_ATTRIBUTE_CHANGED


def test_ana_and_discovery_notices_name_their_log_pages() -> None:
    assert AsyncEvent.ana_change().encode() == 0x000C_0302
    assert AsyncEvent.discovery_log_change().encode() == 0x0070_F002


def test_an_async_event_field_that_does_not_fit_is_refused() -> None:
    with pytest.raises(SpecError):
        AsyncEvent(8, 0, 0).encode()


# ------------------------------------------------------------------ NQN

VALID = [
    DISCOVERY_NQN,
    "nqn.2019-05.io.openebs:7e4b2f42-7b4a-4a4b-9c8e-1d7f0c9a1b2c",
    "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "nqn.2016-06.io.spdk:cnode1",
    "nqn.2014-08.com.example:nvme:nvm-subsystem-sn-d78432",
    "nqn.2024-12.io.openebs:" + "x" * (223 - len("nqn.2024-12.io.openebs:")),
]

INVALID = [
    "",
    "nqn",
    "iqn.2019-05.io.openebs:volume",
    "nqn.19-05.io.openebs:volume",
    "nqn.2019-13.io.openebs:volume",
    "nqn.2019-00.io.openebs:volume",
    "nqn.2019-05.:volume",
    "nqn.2019-05.io..openebs:volume",
    "nqn.2019-05.-io.openebs:volume",
    "nqn.2019-05.io.openebs:",
    "nqn.2019-05.io.openebs:vol\x00ume",
    "nqn.2019-05.io.openebs:vol\nume",
    "nqn.2014-08.org.nvmexpress:uuid:not-a-uuid",
    "nqn.2014-08.org.nvmexpress:uuid:f81d4fae7dec11d0a76500a0c91e6bf6",
    "nqn.2024-12.io.openebs:" + "x" * (224 - len("nqn.2024-12.io.openebs:")),
]


@pytest.mark.parametrize("nqn", VALID)
def test_a_well_formed_nqn_is_accepted(nqn: str) -> None:
    assert validate_nqn(nqn) == nqn


@pytest.mark.parametrize("nqn", INVALID)
def test_a_malformed_nqn_is_refused(nqn: str) -> None:
    with pytest.raises(SpecError):
        validate_nqn(nqn)


def test_the_223_byte_limit_counts_utf8_bytes_not_characters() -> None:
    prefix = "nqn.2024-12.io.openebs:"
    with pytest.raises(SpecError, match="bytes"):
        validate_nqn(prefix + "\u00e9" * ((223 - len(prefix)) // 2 + 1))


@given(st.uuids())
def test_a_uuid_nqn_is_valid(value: uuid.UUID) -> None:
    assert validate_nqn(uuid_nqn(value)).endswith(str(value))
