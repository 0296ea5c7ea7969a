"""Bdev URIs, as Mayastor accepts them: parsing only, no I/O.

Grammar (one scheme a line; ``[...]`` is optional, parameters in any order):

* ``malloc:///<name>?size_mb=<N>|num_blocks=<N>[&blk_size=512|4096][&uuid=<uuid>]``
* ``aio:///<absolute path>[?blk_size=512|4096][&uuid=<uuid>]``
* ``uring:///<absolute path>[?blk_size=512|4096][&uuid=<uuid>]``
* ``/<absolute path>``: a bare path, with no parameters: a file or block device opened
  with the fastest driver that works (uring, else aio; see `mayastor.bdev.opener`)
* ``nvmf://<host>[:<port>]/<nqn>[?uuid=&hostnqn=&hostid=&reftag=&guard=]`` (also
  ``nvmf+tcp``)
* ``bdev:///<name>[?uuid=<uuid>&hostid=<uuid>]`` (also ``loopback``): an existing bdev of
  this io-engine

``hostid`` is the host identifier the device presents to NVMe reservations (a nexus
opens its children as a host of its own); `DeviceOpener.open` can also set it.

Names follow Mayastor: malloc and loopback bdevs are named by their path without the
leading slash, aio and uring bdevs by their path, nvmf bdevs by
``<host>[:<port>]/<nqn>n1``.

Anything else is refused with `InvalidArgument` naming what is wrong and what is
allowed: unknown schemes and parameters, a parameter given twice, bad values, a host
where none belongs, a relative path. Parsing never touches the file system; whether a
path exists is the driver's question.
"""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from mayastor.errors import InvalidArgument

BLOCK_SIZE_CHOICES = (512, 4096)
DEFAULT_NVMF_PORT = 8420
"""Mayastor's replica port, used when an nvmf URI names none."""
MAX_NQN_BYTES = 223
"""NVMe base spec: an NQN is at most 223 bytes of UTF-8."""

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True, slots=True)
class BdevUri:
    """What every parsed URI has.

    Attributes:
        uri: the text as given.
        scheme: the canonical scheme: malloc, aio, uring, nvmf or bdev.
        name: the bdev name Mayastor gives the device.
        uuid: the uuid the URI asks for, if any.
    """

    uri: str
    scheme: str
    name: str
    uuid: uuid_mod.UUID | None


@dataclass(frozen=True, slots=True)
class MallocUri(BdevUri):
    """``malloc:///name?...``: an in-memory disk of `num_blocks` blocks."""

    block_size: int
    num_blocks: int


@dataclass(frozen=True, slots=True)
class FileUri(BdevUri):
    """``aio:///path``, ``uring:///path`` or a bare path: a file or a block device.

    Attributes:
        path: absolute path of the file or block device.
        block_size: the block size asked for; None means the driver's default (the
            device's logical block size, 512 for a file).
    """

    path: str
    block_size: int | None


@dataclass(frozen=True, slots=True)
class NvmfUri(BdevUri):
    """``nvmf://host:port/nqn``: namespace 1 of a remote NVMe-oF subsystem."""

    host: str
    port: int
    nqn: str
    hostnqn: str | None
    reftag: bool
    guard: bool
    hostid: uuid_mod.UUID | None = None


@dataclass(frozen=True, slots=True)
class LoopbackUri(BdevUri):
    """``bdev:///name``: a bdev that already exists in this io-engine."""

    hostid: uuid_mod.UUID | None = None


# --------------------------------------------------------------------------- helpers


def _fail(uri: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"bdev URI {uri!r}: {message}")


def _query(uri: str, scheme: str, query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    if not query:
        return params
    for pair in query.split("&"):
        if not pair:
            raise _fail(uri, "empty parameter (a stray '&')")
        key, sep, value = pair.partition("=")
        key = unquote(key)
        if key not in allowed:
            raise _fail(
                uri,
                f"unknown parameter {key!r} for {scheme}://; allowed: {', '.join(allowed)}",
            )
        if not sep:
            raise _fail(uri, f"parameter {key!r} has no value ({key}=...)")
        if key in params:
            raise _fail(uri, f"parameter {key!r} is given twice")
        params[key] = unquote(value)
    return params


def _count(uri: str, key: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise _fail(uri, f"parameter {key!r} must be a whole number, not {value!r}")
    number = int(value)
    if number == 0:
        raise _fail(uri, f"parameter {key!r} must be at least 1")
    return number


def _block_size(uri: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) not in BLOCK_SIZE_CHOICES:
        raise _fail(uri, f"parameter 'blk_size' must be 512 or 4096, not {value!r}")
    return int(value)


def _uuid(uri: str, value: str | None, key: str = "uuid") -> uuid_mod.UUID | None:
    if value is None:
        return None
    try:
        return uuid_mod.UUID(value)
    except ValueError:
        raise _fail(
            uri, f"parameter {key!r} is not a uuid: {value!r} (e.g. {uuid_mod.UUID(int=0)})"
        ) from None


def _flag(uri: str, key: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _fail(uri, f"parameter {key!r} must be true or false, not {value!r}")


def _local_path(uri: str, scheme: str, authority: str, path: str, what: str) -> str:
    if authority:
        raise _fail(
            uri,
            f"{scheme}:// takes no host ({authority!r}); write {scheme}:///{what} (three slashes)",
        )
    decoded = unquote(path)
    if not decoded.strip("/"):
        raise _fail(uri, f"missing {what}: write {scheme}:///{what}")
    if "\x00" in decoded:
        raise _fail(uri, "the path contains a NUL byte")
    return decoded


# --------------------------------------------------------------------------- schemes


def _malloc(uri: str, authority: str, path: str, query: str) -> MallocUri:
    name = _local_path(uri, "malloc", authority, path, "name")[1:]
    params = _query(uri, "malloc", query, ("size_mb", "num_blocks", "blk_size", "uuid"))
    block_size = _block_size(uri, params.get("blk_size")) or 512
    if "size_mb" in params and "num_blocks" in params:
        raise _fail(uri, "parameters 'size_mb' and 'num_blocks' exclude each other; give one")
    if "size_mb" in params:
        num_blocks = (_count(uri, "size_mb", params["size_mb"]) << 20) // block_size
    elif "num_blocks" in params:
        num_blocks = _count(uri, "num_blocks", params["num_blocks"])
    else:
        raise _fail(uri, "a malloc disk needs its size: parameter 'size_mb' or 'num_blocks'")
    return MallocUri(
        uri=uri,
        scheme="malloc",
        name=name,
        uuid=_uuid(uri, params.get("uuid")),
        block_size=block_size,
        num_blocks=num_blocks,
    )


def _file(scheme: str) -> Callable[[str, str, str, str], FileUri]:
    def parse(uri: str, authority: str, path: str, query: str) -> FileUri:
        local = _local_path(uri, scheme, authority, path, "path")
        params = _query(uri, scheme, query, ("blk_size", "uuid"))
        return FileUri(
            uri=uri,
            scheme=scheme,
            name=local,
            uuid=_uuid(uri, params.get("uuid")),
            path=local,
            block_size=_block_size(uri, params.get("blk_size")),
        )

    return parse


def _host_port(uri: str, authority: str) -> tuple[str, int]:
    if not authority:
        raise _fail(uri, "missing host: write nvmf://<host>[:<port>]/<nqn>")
    if "@" in authority:
        raise _fail(uri, "user information ('user@') is not allowed in an nvmf URI")
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or not host:
            raise _fail(uri, f"malformed IPv6 host {authority!r}")
        if rest and not rest.startswith(":"):
            raise _fail(uri, f"malformed host and port {authority!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
        if not host:
            raise _fail(uri, "missing host: write nvmf://<host>[:<port>]/<nqn>")
    if port_text is None:
        return host, DEFAULT_NVMF_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise _fail(uri, f"port must be a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def _nvmf(uri: str, authority: str, path: str, query: str) -> NvmfUri:
    host, port = _host_port(uri, authority)
    segments = [unquote(s) for s in path.split("/") if s]
    if not segments:
        raise _fail(uri, "missing subsystem NQN: write nvmf://<host>[:<port>]/<nqn>")
    if len(segments) > 1:
        raise _fail(uri, "too many path segments: the path is one subsystem NQN")
    nqn = segments[0]
    if not nqn.startswith("nqn.") or len(nqn.encode()) > MAX_NQN_BYTES:
        raise _fail(uri, f"{nqn!r} is not an NQN (nqn.<yyyy-mm>.<domain>:..., <= 223 bytes)")
    params = _query(uri, "nvmf", query, ("uuid", "hostnqn", "hostid", "reftag", "guard"))
    return NvmfUri(
        uri=uri,
        scheme="nvmf",
        name=f"{authority}/{nqn}n1",
        uuid=_uuid(uri, params.get("uuid")),
        host=host,
        port=port,
        nqn=nqn,
        hostnqn=params.get("hostnqn"),
        reftag=_flag(uri, "reftag", params.get("reftag")),
        guard=_flag(uri, "guard", params.get("guard")),
        hostid=_uuid(uri, params.get("hostid"), "hostid"),
    )


def _loopback(uri: str, authority: str, path: str, query: str) -> LoopbackUri:
    name = _local_path(uri, "bdev", authority, path, "name").strip("/")
    params = _query(uri, "bdev", query, ("uuid", "hostid"))
    return LoopbackUri(
        uri=uri,
        scheme="bdev",
        name=name,
        uuid=_uuid(uri, params.get("uuid")),
        hostid=_uuid(uri, params.get("hostid"), "hostid"),
    )


_SCHEMES: Mapping[str, Callable[[str, str, str, str], BdevUri]] = {
    "malloc": _malloc,
    "aio": _file("aio"),
    "uring": _file("uring"),
    "nvmf": _nvmf,
    "nvmf+tcp": _nvmf,
    "bdev": _loopback,
    "loopback": _loopback,
}
SCHEMES = tuple(_SCHEMES)
"""Every scheme the grammar knows (opening some of them is up to other layers)."""


def parse_bdev_uri(uri: str) -> BdevUri:
    """Parse a bdev URI or a bare absolute path (scheme aio: a file or block device).

    Args:
        uri: e.g. ``malloc:///m0?size_mb=64``, ``aio:///var/tmp/disk.img?blk_size=4096``,
            ``/dev/loop8``, ``nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:<uuid>``.

    Returns:
        a `MallocUri`, `FileUri`, `NvmfUri` or `LoopbackUri`.

    Raises:
        InvalidArgument: the URI is malformed, names an unknown scheme or parameter, or a
            value is out of range; the message says which and what is allowed.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidArgument(f"bdev URI {uri!r}: empty; expected scheme:///... or /path")
    if uri.startswith("/"):
        if "\x00" in uri:
            raise _fail(uri, "the path contains a NUL byte")
        return FileUri(uri=uri, scheme="aio", name=uri, uuid=None, path=uri, block_size=None)
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme:
        raise _fail(
            uri, "neither an absolute path nor scheme://...; relative paths are not accepted"
        )
    parse = _SCHEMES.get(scheme.lower())
    if parse is None:
        raise _fail(uri, f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    if "#" in rest:
        raise _fail(uri, "a fragment ('#...') is not allowed")
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    return parse(uri, authority, slash + path, query)
