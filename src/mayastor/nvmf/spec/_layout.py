"""Fixed-size NVMe data structures described as field tables.

An NVMe structure (Identify data, log page entries, Fabrics Connect data) is a
byte string with fields at fixed offsets. Each structure in this package lists its
fields once, as `Field(name, offset, kind)`, and `Layout` packs and unpacks a
mapping of field values against that table. Offsets therefore appear once, next to
the spec's figure, and tests can check them one by one.

Field kinds: ``B``/``H``/``I``/``Q`` (little-endian unsigned 8/16/32/64 bits),
``u24`` and ``u128`` (3- and 16-byte little-endian integers, e.g. IEEE OUI and the
SMART counters), ``ascii`` (printable ASCII padded with spaces: SN, MN, TRADDR),
``nqn`` (UTF-8 padded with NULs: SUBNQN, HOSTNQN), ``bytes`` (raw, exact size:
NGUID, EUI64) and ``uuid``.
"""

from __future__ import annotations

import struct
import uuid as uuid_mod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from mayastor.nvmf.spec._errors import SpecError

Buffer = bytes | bytearray | memoryview

_STRUCT_KINDS = {"B": 1, "H": 2, "I": 4, "Q": 8}
_SIZED_KINDS = {"u24": 3, "u128": 16, "uuid": 16}
_STRUCTS = {kind: struct.Struct("<" + kind) for kind in _STRUCT_KINDS}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a structure: where it is and how its bytes read.

    Attributes:
        name: the attribute name on the Python object.
        offset: byte offset from the start of the structure.
        kind: how the bytes read (see the module docstring).
        size: length in bytes; implied by the kind for integers and UUIDs.
    """

    name: str
    offset: int
    kind: str
    size: int = 0

    @property
    def length(self) -> int:
        return _STRUCT_KINDS.get(self.kind) or _SIZED_KINDS.get(self.kind) or self.size


class Layout:
    """A structure of `size` bytes made of `fields` (unnamed bytes are reserved, zero)."""

    def __init__(self, name: str, size: int, fields: Iterable[Field]) -> None:
        self.name = name
        self.size = size
        self.fields = tuple(fields)
        end = 0
        for field in sorted(self.fields, key=lambda f: f.offset):
            if field.offset < end or field.offset + field.length > size or not field.length:
                raise ValueError(f"{name}: field {field.name} overlaps or overflows")
            end = field.offset + field.length
        self.by_name = {field.name: field for field in self.fields}

    def offset(self, name: str) -> int:
        """The byte offset of a field (to report an invalid field, e.g. Connect IPO)."""
        return self.by_name[name].offset

    def encode(self, values: Mapping[str, Any]) -> bytearray:
        """Pack `values` (one per field) into a new zero-filled buffer.

        Raises:
            SpecError: a value does not fit its field.
        """
        out = bytearray(self.size)
        for field in self.fields:
            _pack(self.name, field, out, values[field.name])
        return out

    def decode(self, raw: Buffer, *, partial: bool = False) -> dict[str, Any]:
        """Unpack every field of `raw`.

        Args:
            raw: exactly `size` bytes (or at least that many when `partial`).
            partial: accept a longer buffer and read only this structure's bytes.

        Raises:
            SpecError: wrong length, or a string field that is not valid text.
        """
        length = memoryview(raw).nbytes
        if length != self.size and not (partial and length >= self.size):
            raise SpecError(f"{self.name} is {self.size} bytes, got {length}")
        return {field.name: _unpack(self.name, field, raw) for field in self.fields}


class FixedStruct:
    """Mixin for a frozen dataclass whose fields are exactly those of its `layout`."""

    __slots__ = ()
    layout: ClassVar[Layout]

    def encode(self) -> bytes:
        """The structure's bytes.

        Raises:
            SpecError: a field does not fit.
        """
        return bytes(
            self.layout.encode({name: getattr(self, name) for name in self.layout.by_name})
        )

    @classmethod
    def decode(cls, raw: Buffer) -> Self:
        """Read the structure from exactly `layout.size` bytes.

        Raises:
            SpecError: wrong length, or a text field that is not valid text.
        """
        return cls(**cls.layout.decode(raw))


def _pack(struct_name: str, field: Field, out: bytearray, value: Any) -> None:
    where = f"{struct_name}.{field.name} (byte {field.offset})"
    kind = field.kind
    try:
        if kind in _STRUCTS:
            _STRUCTS[kind].pack_into(out, field.offset, value)
            return
        if kind in ("u24", "u128"):
            data = int(value).to_bytes(field.length, "little")
        elif kind == "uuid":
            data = value.bytes if isinstance(value, uuid_mod.UUID) else bytes(value)
        elif kind == "ascii":
            data = encode_ascii(value, field.length, where)
        elif kind == "nqn":
            data = encode_nqn_text(value, field.length, where)
        else:
            data = bytes(value)
    except (struct.error, OverflowError, TypeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"{where}: {value!r} does not fit: {exc}", offset=field.offset) from exc
    if len(data) != field.length:
        raise SpecError(f"{where} is {field.length} bytes, got {len(data)}", offset=field.offset)
    out[field.offset : field.offset + field.length] = data


def _unpack(struct_name: str, field: Field, raw: Buffer) -> Any:
    kind = field.kind
    if kind in _STRUCTS:
        return _STRUCTS[kind].unpack_from(raw, field.offset)[0]
    data = bytes(memoryview(raw)[field.offset : field.offset + field.length])
    if kind in ("u24", "u128"):
        return int.from_bytes(data, "little")
    if kind == "uuid":
        return uuid_mod.UUID(bytes=data)
    if kind == "ascii":
        return decode_text(data, f"{struct_name}.{field.name}", field.offset, "ascii")
    if kind == "nqn":
        return decode_text(data, f"{struct_name}.{field.name}", field.offset, "utf-8")
    return data


def encode_ascii(value: str, size: int, where: str) -> bytes:
    """`value` as printable ASCII, padded with spaces to `size` bytes.

    Raises:
        SpecError: not printable ASCII, or longer than `size`.
    """
    if not value.isascii() or not value.isprintable():
        raise SpecError(f"{where}: {value!r} is not printable ASCII")
    data = value.encode("ascii")
    if len(data) > size:
        raise SpecError(f"{where}: {value!r} is longer than {size} bytes")
    return data.ljust(size, b" ")


def encode_nqn_text(value: str, size: int, where: str) -> bytes:
    """`value` as UTF-8, NUL-terminated and NUL-padded to `size` bytes.

    Raises:
        SpecError: does not leave room for the terminating NUL.
    """
    data = value.encode("utf-8")
    if len(data) >= size or "\x00" in value:
        raise SpecError(f"{where}: {value!r} does not fit in {size} bytes with its NUL")
    return data.ljust(size, b"\x00")


def decode_text(data: bytes, where: str, offset: int, encoding: str) -> str:
    """A fixed-width text field: up to the first NUL, trailing spaces removed.

    Raises:
        SpecError: the bytes are not valid in `encoding`.
    """
    end = data.find(b"\x00")
    if end >= 0:
        data = data[:end]
    try:
        return data.decode(encoding).rstrip(" ")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{where} is not valid {encoding}", offset=offset) from exc
