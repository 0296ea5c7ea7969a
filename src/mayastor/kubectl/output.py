"""Writing results in the format chosen with ``-o``: a table, JSON or YAML.

JSON and YAML carry the API's objects as they came (every field, sizes in bytes), for
scripts; tables carry the columns of Mayastor's plugin with sizes in binary units,
for people. A list with nothing in it prints nothing on stdout in a table, and says
so on stderr, as kubectl does.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml

from mayastor.kubectl.tables import Row, render_table


class OutputFormat(enum.StrEnum):
    TABLE = "table"  # aligned columns for people
    JSON = "json"  # the API's objects, indented
    YAML = "yaml"  # the same as YAML


def serialise(data: Any, fmt: OutputFormat) -> str:
    """`data` (decoded JSON) as JSON or YAML text ending in a newline.

    Raises:
        ValueError: `fmt` is TABLE, which has no serialisation.
    """
    if fmt is OutputFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt is OutputFormat.YAML:
        text: str = yaml.safe_dump(
            data, sort_keys=False, allow_unicode=True, default_flow_style=False
        )
        return text
    raise ValueError("a table is not a serialisation; use render_table")


class Output:
    """Where and how a command prints its result.

    Args:
        fmt: table, json or yaml.
        out: stdout unless given.
        err: stderr unless given (notes for people, such as "No volumes found").
    """

    def __init__(
        self, fmt: OutputFormat, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    @property
    def table(self) -> bool:
        return self.fmt is OutputFormat.TABLE

    def objects(
        self,
        data: Any,
        headers: Sequence[str],
        rows: Callable[[Any], list[Row]],
        what: str,
    ) -> None:
        """A result shown as a table of `rows(data)` or serialised whole.

        Args:
            data: the decoded JSON.
            headers: the table's columns.
            rows: builds the rows from `data`.
            what: the plural of what is listed, for "No volumes found".
        """
        if not self.table:
            self.out.write(serialise(data, self.fmt))
            return
        built = rows(data)
        if not built:
            print(f"No {what} found.", file=self.err)
            return
        self.out.write(render_table(headers, built))

    def done(self, data: Any, text: str) -> None:
        """The result of a change: `text` for people, or the changed object serialised."""
        if self.table:
            print(text, file=self.out)
        else:
            self.out.write(serialise(data, self.fmt))
