"""What a name of a node, pool or label may be: checked at the API edge, one place."""

from __future__ import annotations

import re

from mayastor.errors import InvalidArgument

NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$"
"""A node or pool name (also in the OpenAPI document, so clients know it)."""
LABEL_KEY_PATTERN = (
    r"^([A-Za-z0-9][A-Za-z0-9.-]{0,252}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")


def check_name(what: str, name: str) -> str:
    """A node or pool name: letters, digits, '.', '_' and '-', starting and ending with a
    letter or digit, at most 255 characters.

    Raises:
        InvalidArgument: naming what is wrong.
    """
    if not _NAME.match(name):
        raise InvalidArgument(
            f"{what} name {name!r} is not valid: use letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit, at most 255 characters"
        )
    return name


def check_label(key: str, value: str | None = None) -> None:
    """A label as Kubernetes allows it: ``[prefix/]name`` and a value of up to 63 characters.

    Raises:
        InvalidArgument: naming what is wrong.
    """
    if not _LABEL_KEY.match(key):
        raise InvalidArgument(f"label key {key!r} is not valid ([prefix/]name, 63 characters)")
    if value is not None and not _LABEL_VALUE.match(value):
        raise InvalidArgument(f"label value {value!r} of {key} is not valid (63 characters)")
