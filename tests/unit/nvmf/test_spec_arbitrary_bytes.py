"""Decoders of the spec structures take any bytes: a structure or SpecError, nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    AnaLog,
    Command,
    Completion,
    ConnectData,
    DiscoveryLogEntry,
    DiscoveryLogPage,
    ErrorLogEntry,
    IdentifyController,
    IdentifyNamespace,
    SglDescriptor,
    SmartLog,
    SpecError,
    decode_dsm_ranges,
    decode_namespace_id_descriptors,
    decode_namespace_list,
)

DECODERS: dict[str, tuple[Callable[[bytes], object], int]] = {
    "command": (Command.decode, 64),
    "sgl": (SglDescriptor.decode, 16),
    "completion": (Completion.decode, 16),
    "connect_data": (ConnectData.decode, 1024),
    "discovery_entry": (DiscoveryLogEntry.decode, 1024),
    "discovery_page": (DiscoveryLogPage.decode, 2048),
    "error_entry": (ErrorLogEntry.decode, 64),
    "smart": (SmartLog.decode, 512),
    "ana": (AnaLog.decode, 200),
    "identify_controller": (IdentifyController.decode, 4096),
    "identify_namespace": (IdentifyNamespace.decode, 4096),
    "namespace_list": (decode_namespace_list, 4096),
    "namespace_id_descriptors": (decode_namespace_id_descriptors, 4096),
    "dsm_ranges": (lambda raw: decode_dsm_ranges(raw, 4), 64),
}


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_bytes_decode_or_raise_spec_error(name: str, data: st.DataObject) -> None:
    decode, size = DECODERS[name]
    exact = data.draw(st.booleans())
    if exact:
        raw = data.draw(st.binary(min_size=size, max_size=size))
    else:
        raw = data.draw(st.binary(max_size=size + 8))
    try:
        decoded = decode(raw)
    except SpecError as err:
        decoded = err
    assert decoded is not None
