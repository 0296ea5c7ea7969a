"""Printing results: aligned tables for people, JSON with every field for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def message_to_dict(message: Message) -> dict[str, Any]:
    """Every field, with the proto field names, enums as names, 64-bit ints as numbers."""
    data = MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return _ints(message, data)


def _ints(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    # protobuf's JSON mapping writes 64-bit integers as strings; scripts want numbers.
    for fd in message.DESCRIPTOR.fields:
        if fd.name not in data:
            continue
        value = getattr(message, fd.name)
        if fd.type == fd.TYPE_MESSAGE:
            if fd.is_repeated:
                data[fd.name] = [_ints(m, d) for m, d in zip(value, data[fd.name], strict=True)]
            else:
                data[fd.name] = _ints(value, data[fd.name])
        elif fd.cpp_type in (fd.CPPTYPE_INT64, fd.CPPTYPE_UINT64):
            data[fd.name] = list(value) if fd.is_repeated else int(value)
    return data


class Printer:
    """Writes results in the format chosen with ``-o``."""

    def __init__(self, fmt: str, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout

    @property
    def json(self) -> bool:
        return self.fmt == "json"

    def messages(
        self,
        items: Sequence[Message],
        headers: Sequence[str],
        row: Any,
        empty: str,
    ) -> None:
        """A list of messages: a table of `row(item)` cells, or a JSON array."""
        if self.json:
            self.emit_json([message_to_dict(m) for m in items])
        elif not items:
            print(empty, file=self.out)
        else:
            self.table(headers, [row(m) for m in items])

    def message(self, item: Message, text: str | None = None) -> None:
        """One result: its JSON, or `text` for people (nothing when None)."""
        if self.json:
            self.emit_json(message_to_dict(item))
        elif text is not None:
            print(text, file=self.out)

    def emit_json(self, data: Any) -> None:
        json.dump(data, self.out, indent=2, sort_keys=False)
        self.out.write("\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[str(c) for c in r] for r in rows]
        widths = [len(h) for h in headers]
        for r in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print(line.format(*headers).rstrip(), file=self.out)
        for r in cells:
            print(line.format(*r).rstrip(), file=self.out)
