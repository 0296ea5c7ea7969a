"""Helpers for the codec tests: wire bytes, readers past the IC exchange, draining."""

from __future__ import annotations

import struct

from crc32c import crc32c

from mayastor.nvmf.pdu import Buffer, Pdu, PduReader, PduWriter, Role


def wire(parts: list[Buffer]) -> bytes:
    """The bytes an encoder's parts put on the wire."""
    return b"".join(bytes(p) for p in parts)


def digest(data: bytes) -> bytes:
    """A header or data digest as the spec puts it on the wire: CRC32C, little-endian."""
    return struct.pack("<I", crc32c(data))


def other(role: Role) -> Role:
    return Role.HOST if role is Role.CONTROLLER else Role.CONTROLLER


def ic_prelude(reader_role: Role) -> bytes:
    """The IC PDU a reader of `reader_role` must see first."""
    writer = PduWriter(other(reader_role))
    if reader_role is Role.CONTROLLER:
        return wire(writer.encode_ic_req())
    return wire(writer.encode_ic_resp())


def ready_reader(
    role: Role,
    *,
    header_digest: bool = False,
    data_digest: bool = False,
    pda: int = 0,
    max_data_length: int = 1 << 20,
) -> PduReader:
    """A reader that has seen its IC PDU and is configured as negotiated."""
    reader = PduReader(role, max_data_length=max_data_length)
    reader.feed(ic_prelude(role))
    assert reader.next_pdu() is not None
    reader.configure(header_digest=header_digest, data_digest=data_digest, pda=pda)
    return reader


def drain(reader: PduReader) -> list[Pdu]:
    """Every whole PDU the reader holds now."""
    pdus = []
    while (pdu := reader.next_pdu()) is not None:
        pdus.append(pdu)
    return pdus
