"""Properties of the codec over generated PDUs and generated garbage (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mayastor.nvmf.pdu import (
    R2T,
    C2HData,
    C2HTermReq,
    CapsuleCmd,
    CapsuleResp,
    DataDigestError,
    H2CData,
    H2CTermReq,
    ICReq,
    ICResp,
    Pdu,
    PduError,
    PduReader,
    PduWriter,
    Role,
)
from tests.unit.nvmf.pdu_streams import ic_prelude, other, wire

PDU_CLASSES = (
    ICReq,
    ICResp,
    H2CTermReq,
    C2HTermReq,
    CapsuleCmd,
    CapsuleResp,
    H2CData,
    C2HData,
    R2T,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
payload = st.binary(min_size=1, max_size=300)
pda = st.integers(0, 31)

host_transfers = st.one_of(
    st.builds(CapsuleCmd, st.binary(min_size=64, max_size=64), st.binary(max_size=300)),
    st.builds(H2CData, u16, u16, u32, payload, st.booleans()),
)
controller_transfers = st.one_of(
    st.builds(CapsuleResp, st.binary(min_size=16, max_size=16)),
    st.builds(
        lambda cid, off, data, last, success: C2HData(cid, off, data, last, last and success),
        u16,
        u32,
        payload,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(R2T, u16, u16, u32, st.integers(1, 0xFFFF_FFFF)),
)
icreqs = st.builds(ICReq, st.just(0), pda, st.booleans(), st.booleans(), u32)
icresps = st.builds(
    ICResp,
    st.just(0),
    pda,
    st.booleans(),
    st.booleans(),
    st.integers(1024, 1 << 20).map(lambda n: n * 4),
)
terms = st.tuples(st.integers(0, 0xFFFF), u32, st.binary(max_size=128))


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    """What one side sends: its IC PDU, PDUs under the negotiated options, maybe a
    termination; plus the data alignment the receiver asked for and where the byte
    stream is cut into reads."""
    reader_role = draw(st.sampled_from(Role))
    transfers: list[Pdu]
    if reader_role is Role.CONTROLLER:
        ic: Pdu = draw(icreqs)
        transfers = list(draw(st.lists(host_transfers, max_size=6)))
    else:
        ic = draw(icresps)
        transfers = list(draw(st.lists(controller_transfers, max_size=6)))
    pdus = [ic, *transfers]
    if draw(st.booleans()):
        fes, fei, data = draw(terms)
        term_class = H2CTermReq if reader_role is Role.CONTROLLER else C2HTermReq
        pdus.append(term_class(fes, fei, data))
    cuts = draw(st.lists(st.integers(0, 4000), max_size=8))
    return reader_role, pdus, draw(pda), cuts


Conversation = tuple[Role, list[Pdu], int, list[int]]


def encode_conversation(reader_role: Role, pdus: list[Pdu], align: int) -> bytes:
    """The sender's bytes: the IC PDU plain, the rest with the digests it asked for."""
    ic = pdus[0]
    assert isinstance(ic, ICReq | ICResp)
    writer = PduWriter(other(reader_role))
    stream = wire(writer.encode(ic))
    writer.configure(header_digest=ic.hdgst_enable, data_digest=ic.ddgst_enable, pda=align)
    return stream + b"".join(wire(writer.encode(p)) for p in pdus[1:])


def reader_options(pdus: list[Pdu], align: int) -> dict[str, int]:
    ic = pdus[0]
    assert isinstance(ic, ICReq | ICResp)
    return {"header_digest": ic.hdgst_enable, "data_digest": ic.ddgst_enable, "pda": align}


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


@given(conversations())
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_whatever_is_encoded_decodes_to_the_same_pdus_however_the_bytes_are_split(
    conversation: Conversation,
) -> None:
    reader_role, pdus, align, cuts = conversation
    stream = encode_conversation(reader_role, pdus, align)
    reader = PduReader(reader_role)
    got: list[Pdu] = []
    for piece in split(stream, cuts):
        reader.feed(piece)
        while (pdu := reader.next_pdu()) is not None:
            got.append(pdu)
            if len(got) == 1:
                reader.configure(**reader_options(pdus, align))  # type: ignore[arg-type]
    assert got == pdus
    assert reader.buffered == 0


@st.composite
def plausible_pdu_bytes(draw: st.DrawFn) -> bytes:
    """A common header with likely-looking fields, then random bytes."""
    ptype = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 9]))
    flags = draw(st.integers(0, 15))
    hlen = draw(st.sampled_from([24, 72, 128, draw(st.integers(0, 255))]))
    pdo = draw(st.sampled_from([0, hlen, hlen + 4, draw(st.integers(0, 255))]))
    plen = draw(st.integers(0, 400))
    body = draw(st.binary(min_size=0, max_size=400))
    return bytes([ptype, flags, hlen & 0xFF, pdo & 0xFF]) + plen.to_bytes(4, "little") + body


@st.composite
def garbage(draw: st.DrawFn) -> tuple[Role, bool, bool, bool, int, list[bytes]]:
    role = draw(st.sampled_from(Role))
    past_ic = draw(st.booleans())
    hdgst, ddgst, pda_value = draw(st.booleans()), draw(st.booleans()), draw(pda)
    pieces = draw(st.lists(st.one_of(st.binary(max_size=200), plausible_pdu_bytes()), max_size=6))
    return role, past_ic, hdgst, ddgst, pda_value, pieces


def _read_everything(
    reader: PduReader, chunks: list[bytes], configure_after_ic: dict[str, int] | None = None
) -> None:
    """Read all; only PDUs, data digest errors and one protocol error may come out."""
    seen = 0
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            error: PduError | None = None
            try:
                pdu = reader.next_pdu()
            except DataDigestError:
                continue
            except PduError as err:
                error = err
            if error is not None:
                assert 1 <= error.fes <= 6
                assert len(error.header) <= 128
                return
            if pdu is None:
                break
            assert isinstance(pdu, PDU_CLASSES)
            seen += 1
            if seen == 1 and configure_after_ic is not None:
                reader.configure(**configure_after_ic)  # type: ignore[arg-type]


@given(garbage())
@settings(deadline=None)
def test_arbitrary_bytes_give_pdus_or_a_protocol_error_and_nothing_else(
    case: tuple[Role, bool, bool, bool, int, list[bytes]],
) -> None:
    role, past_ic, hdgst, ddgst, pda_value, chunks = case
    reader = PduReader(role, max_data_length=4096)
    if past_ic:
        reader.feed(ic_prelude(role))
        reader.next_pdu()
        reader.configure(header_digest=hdgst, data_digest=ddgst, pda=pda_value)
    _read_everything(reader, chunks)


@given(conversations(), st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), min_size=1))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_corrupted_streams_give_pdus_or_a_protocol_error_and_nothing_else(
    conversation: Conversation, flips: list[tuple[int, int]]
) -> None:
    reader_role, pdus, align, cuts = conversation
    stream = bytearray(encode_conversation(reader_role, pdus, align))
    for where, mask in flips:
        stream[where % len(stream)] ^= mask
    reader = PduReader(reader_role)
    _read_everything(reader, split(bytes(stream), cuts), reader_options(pdus, align))
