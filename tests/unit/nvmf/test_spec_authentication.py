"""Authentication Send and Receive (NVMe Base 2.0) and the Connect completion's AUTHREQ
bits, byte by byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mayastor.nvmf.spec import (
    CONNECT_AUTHREQ_ATR,
    Authentication,
    Command,
    SglDescriptor,
    connect_success_dw0,
)


def test_authentication_send_puts_secp_spsp_and_tl_where_the_spec_says() -> None:
    sqe = Authentication(True, 72).to_command(9, SglDescriptor.in_capsule(72)).encode()
    assert sqe[0] == 0x7F
    assert sqe[2:4] == (9).to_bytes(2, "little")
    assert sqe[4] == 0x05  # FCTYPE Authentication Send
    assert sqe[40:44] == bytes([0x00, 0x01, 0x01, 0xE9])  # reserved, SPSP0, SPSP1, SECP
    assert sqe[44:48] == (72).to_bytes(4, "little")  # TL


def test_authentication_receive_has_fctype_6_and_the_allocation_length() -> None:
    sqe = Authentication(False, 4096).to_command(1, SglDescriptor.transport(4096)).encode()
    assert sqe[4] == 0x06
    assert sqe[44:48] == (4096).to_bytes(4, "little")  # AL


@given(st.booleans(), st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255))
def test_authentication_commands_round_trip(send: bool, length: int, secp: int, spsp: int) -> None:
    cmd = Authentication(send, length, secp, spsp, 255 - spsp)
    decoded = Command.decode(cmd.to_command(3, SglDescriptor.transport(0)).encode())
    assert Authentication.from_command(decoded) == cmd


def test_connect_completion_asks_for_authentication_with_atr_bit_17() -> None:
    assert CONNECT_AUTHREQ_ATR == 1 << 17
    assert connect_success_dw0(5, authenticate=True) == 5 | 1 << 17
    assert connect_success_dw0(5) == 5
