"""Labels on the command line, as kubectl takes them: ``key=value`` sets, ``key-`` removes.

Keys and values follow Kubernetes' rules, which the core agent applies too: a key is
``[prefix/]name``, the name at most 63 characters of ``[A-Za-z0-9._-]`` that begin
and end with a letter or digit, the optional prefix a DNS subdomain; a value the
same as a name. A value may not be empty here, because the REST API carries it in
the path (``/label/key=value``) where an empty segment does not route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_PREFIX = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


@dataclass(frozen=True)
class LabelChange:
    """One change of labels: set `key` to `value`, or remove `key` when `value` is None."""

    key: str
    value: str | None

    @property
    def removes(self) -> bool:
        return self.value is None

    def __str__(self) -> str:
        return f"{self.key}-" if self.value is None else f"{self.key}={self.value}"


def check_key(key: str) -> str:
    """`key` when it is a valid label key.

    Raises:
        ValueError: it is not, with the rule it breaks.
    """
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        raise ValueError(f"label key {key!r}: the prefix must be a DNS subdomain (example.com/)")
    if not _NAME.match(name):
        raise ValueError(
            f"label key {key!r}: the name must be 1-63 characters of letters, digits, "
            "'-', '_' and '.', beginning and ending with a letter or digit"
        )
    return key


def check_value(key: str, value: str) -> str:
    """`value` when it is a valid (non-empty) label value for `key`.

    Raises:
        ValueError: it is not, with the rule it breaks.
    """
    if not value:
        raise ValueError(f"label {key}=: the value may not be empty")
    if not _NAME.match(value):
        raise ValueError(
            f"label {key}={value}: the value must be 1-63 characters of letters, digits, "
            "'-', '_' and '.', beginning and ending with a letter or digit"
        )
    return value


def parse_label(text: str) -> tuple[str, str]:
    """``(key, value)`` from ``key=value``.

    Raises:
        ValueError: no ``=``, or a key or value that breaks the rules.
    """
    key, equals, value = text.partition("=")
    if not equals:
        raise ValueError(f"{text!r} is not a label; write key=value")
    return check_key(key), check_value(key, value)


def parse_label_change(text: str) -> LabelChange:
    """A change from ``key=value`` (set) or ``key-`` (remove), as ``kubectl label`` takes.

    Raises:
        ValueError: neither form, or a key or value that breaks the rules.
    """
    if "=" in text:
        key, value = parse_label(text)
        return LabelChange(key, value)
    if text.endswith("-"):
        return LabelChange(check_key(text[:-1]), None)
    raise ValueError(f"{text!r} is not a label change; write key=value to set or key- to remove")


def parse_label_rule(text: str) -> tuple[str, str]:
    """A placement rule: ``key=value`` (that value) or ``key`` (any value, given as "").

    Raises:
        ValueError: a key or value that breaks the rules.
    """
    if "=" in text:
        return parse_label(text)
    return check_key(text), ""
