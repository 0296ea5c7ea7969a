"""Bdev URI parsing: every scheme, every parameter, each refusal and its message."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayastor.bdev import (
    DEFAULT_NVMF_PORT,
    FileUri,
    LoopbackUri,
    MallocUri,
    NvmfUri,
    parse_bdev_uri,
)
from mayastor.errors import InvalidArgument

U = "0b0b2f4c-6f4f-4a36-9a37-1e5cd26bc1f4"
NQN = f"nqn.2019-05.io.openebs:{U}"


def refused(uri: str, *fragments: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse_bdev_uri(uri)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- malloc


def test_malloc_size_mb_gives_blocks_of_512_by_default() -> None:
    parsed = parse_bdev_uri("malloc:///m0?size_mb=64")
    assert parsed == MallocUri(
        uri="malloc:///m0?size_mb=64",
        scheme="malloc",
        name="m0",
        uuid=None,
        block_size=512,
        num_blocks=64 * 2048,
    )


def test_malloc_size_mb_with_4096_blocks() -> None:
    parsed = parse_bdev_uri("malloc:///m1?size_mb=8&blk_size=4096")
    assert isinstance(parsed, MallocUri)
    assert (parsed.block_size, parsed.num_blocks) == (4096, 2048)


def test_malloc_num_blocks_is_taken_as_given() -> None:
    parsed = parse_bdev_uri("malloc:///m2?num_blocks=1000&blk_size=512")
    assert isinstance(parsed, MallocUri)
    assert parsed.num_blocks == 1000


def test_malloc_uuid_is_parsed() -> None:
    parsed = parse_bdev_uri(f"malloc:///m3?size_mb=1&uuid={U}")
    assert parsed.uuid == uuid.UUID(U)


def test_malloc_parameters_may_come_in_any_order() -> None:
    a = parse_bdev_uri(f"malloc:///m?blk_size=4096&uuid={U}&size_mb=4")
    b = parse_bdev_uri(f"malloc:///m?size_mb=4&blk_size=4096&uuid={U}")
    assert (a.name, a.uuid) == (b.name, b.uuid)
    assert isinstance(a, MallocUri)
    assert isinstance(b, MallocUri)
    assert (a.num_blocks, a.block_size) == (b.num_blocks, b.block_size)


def test_malloc_name_may_be_percent_encoded() -> None:
    assert parse_bdev_uri("malloc:///my%20disk?size_mb=1").name == "my disk"


def test_malloc_without_a_size_is_refused() -> None:
    refused("malloc:///m0", "'size_mb' or 'num_blocks'")


def test_malloc_with_both_sizes_is_refused() -> None:
    refused("malloc:///m0?size_mb=1&num_blocks=8", "'size_mb' and 'num_blocks'")


def test_malloc_of_size_zero_is_refused() -> None:
    refused("malloc:///m0?size_mb=0", "'size_mb'", "at least 1")
    refused("malloc:///m0?num_blocks=0", "'num_blocks'", "at least 1")


@pytest.mark.parametrize("value", ["-1", "1.5", "ten", "", " 4", "1_000", "+4", "٣"])
def test_malloc_size_that_is_not_a_whole_number_is_refused(value: str) -> None:
    refused(f"malloc:///m0?size_mb={value}", "'size_mb'")


@pytest.mark.parametrize("value", ["1024", "0", "513", "8192", "x", ""])
def test_block_size_other_than_512_or_4096_is_refused(value: str) -> None:
    refused(f"malloc:///m0?size_mb=1&blk_size={value}", "'blk_size'", "512 or 4096")


def test_malloc_without_a_name_is_refused() -> None:
    refused("malloc:///?size_mb=1", "missing name")
    refused("malloc://?size_mb=1", "missing name")


def test_malloc_with_a_host_is_refused_and_told_about_three_slashes() -> None:
    refused("malloc://m0?size_mb=1", "takes no host", "malloc:///name")


def test_unknown_malloc_parameter_is_refused_with_the_allowed_ones() -> None:
    refused(
        "malloc:///m0?size_mb=1&size_gb=1",
        "unknown parameter 'size_gb'",
        "size_mb, num_blocks, blk_size, uuid",
    )


def test_parameter_given_twice_is_refused() -> None:
    refused("malloc:///m0?size_mb=1&size_mb=2", "'size_mb' is given twice")


def test_parameter_without_a_value_is_refused() -> None:
    refused("malloc:///m0?size_mb", "'size_mb' has no value")


def test_stray_ampersand_is_refused() -> None:
    refused("malloc:///m0?size_mb=1&", "stray '&'")


@pytest.mark.parametrize("value", ["nope", "1234", f"{U}0", U.replace("-", "_")])
def test_malformed_uuid_is_refused(value: str) -> None:
    refused(f"malloc:///m0?size_mb=1&uuid={value}", "'uuid'", "not a uuid")


# --------------------------------------------------------------------------- aio, uring


@pytest.mark.parametrize("scheme", ["aio", "uring"])
def test_file_uri_names_the_device_by_its_path(scheme: str) -> None:
    parsed = parse_bdev_uri(f"{scheme}:///var/tmp/disk.img")
    assert parsed == FileUri(
        uri=f"{scheme}:///var/tmp/disk.img",
        scheme=scheme,
        name="/var/tmp/disk.img",
        uuid=None,
        path="/var/tmp/disk.img",
        block_size=None,
    )


@pytest.mark.parametrize("scheme", ["aio", "uring"])
def test_file_uri_takes_a_block_size_and_a_uuid(scheme: str) -> None:
    parsed = parse_bdev_uri(f"{scheme}:///dev/loop8?blk_size=4096&uuid={U}")
    assert isinstance(parsed, FileUri)
    assert (parsed.path, parsed.block_size, parsed.uuid) == ("/dev/loop8", 4096, uuid.UUID(U))


@pytest.mark.parametrize("scheme", ["aio", "uring"])
def test_file_uri_refuses_malloc_parameters(scheme: str) -> None:
    refused(
        f"{scheme}:///dev/loop8?size_mb=4",
        "unknown parameter 'size_mb'",
        f"{scheme}://",
        "allowed: blk_size, uuid",
    )


@pytest.mark.parametrize("scheme", ["aio", "uring"])
def test_file_uri_with_a_relative_path_is_refused(scheme: str) -> None:
    refused(f"{scheme}://disk.img", "takes no host", "three slashes")
    refused(f"{scheme}://./disk.img", "takes no host")


@pytest.mark.parametrize("scheme", ["aio", "uring"])
def test_file_uri_without_a_path_is_refused(scheme: str) -> None:
    refused(f"{scheme}:///", "missing path")
    refused(f"{scheme}://", "missing path")


def test_file_uri_with_a_nul_byte_is_refused() -> None:
    refused("aio:///tmp/a%00b", "NUL")


def test_file_path_is_percent_decoded() -> None:
    parsed = parse_bdev_uri("aio:///var/tmp/my%20disk.img")
    assert isinstance(parsed, FileUri)
    assert parsed.path == "/var/tmp/my disk.img"


def test_file_block_size_1024_is_refused() -> None:
    refused("aio:///dev/loop8?blk_size=1024", "'blk_size' must be 512 or 4096")


def test_scheme_is_case_insensitive() -> None:
    assert parse_bdev_uri("AIO:///dev/loop8").scheme == "aio"


# --------------------------------------------------------------------------- bare paths


@pytest.mark.parametrize("path", ["/dev/loop8", "/var/tmp/disk.img", "/a/b?c=d"])
def test_bare_absolute_path_means_aio_named_by_the_path(path: str) -> None:
    assert parse_bdev_uri(path) == FileUri(
        uri=path, scheme="aio", name=path, uuid=None, path=path, block_size=None
    )


@pytest.mark.parametrize("text", ["disk.img", "./disk.img", "dev/loop8", "../x"])
def test_relative_path_is_refused(text: str) -> None:
    refused(text, "relative paths are not accepted")


def test_empty_uri_is_refused() -> None:
    refused("", "empty")


# --------------------------------------------------------------------------- nvmf


def test_nvmf_uri_names_namespace_one_of_the_subsystem() -> None:
    parsed = parse_bdev_uri(f"nvmf://127.0.0.1:8420/{NQN}")
    assert parsed == NvmfUri(
        uri=f"nvmf://127.0.0.1:8420/{NQN}",
        scheme="nvmf",
        name=f"127.0.0.1:8420/{NQN}n1",
        uuid=None,
        host="127.0.0.1",
        port=8420,
        nqn=NQN,
        hostnqn=None,
        reftag=False,
        guard=False,
    )


def test_nvmf_port_defaults_to_the_replica_port() -> None:
    parsed = parse_bdev_uri(f"nvmf://node-2/{NQN}")
    assert isinstance(parsed, NvmfUri)
    assert (parsed.host, parsed.port, parsed.name) == (
        "node-2",
        DEFAULT_NVMF_PORT,
        f"node-2/{NQN}n1",
    )


def test_nvmf_takes_an_ipv6_host_in_brackets() -> None:
    parsed = parse_bdev_uri(f"nvmf://[::1]:4421/{NQN}")
    assert isinstance(parsed, NvmfUri)
    assert (parsed.host, parsed.port) == ("::1", 4421)


def test_nvmf_tcp_is_an_alias_of_nvmf() -> None:
    assert parse_bdev_uri(f"nvmf+tcp://127.0.0.1:4421/{NQN}").scheme == "nvmf"


def test_nvmf_parameters_are_parsed() -> None:
    parsed = parse_bdev_uri(
        f"nvmf://127.0.0.1/{NQN}?uuid={U}&hostnqn=nqn.2014-08.org.example:h1&reftag=true&guard=0"
    )
    assert isinstance(parsed, NvmfUri)
    assert parsed.uuid == uuid.UUID(U)
    assert parsed.hostnqn == "nqn.2014-08.org.example:h1"
    assert (parsed.reftag, parsed.guard) == (True, False)


def test_nvmf_flag_that_is_not_a_boolean_is_refused() -> None:
    refused(f"nvmf://h/{NQN}?reftag=maybe", "'reftag' must be true or false")


def test_nvmf_without_a_host_is_refused() -> None:
    refused(f"nvmf:///{NQN}", "missing host")
    refused(f"nvmf://:8420/{NQN}", "missing host")


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", ""])
def test_nvmf_port_out_of_range_is_refused(port: str) -> None:
    refused(f"nvmf://h:{port}/{NQN}", "port must be a number from 1 to 65535")


def test_nvmf_without_an_nqn_is_refused() -> None:
    refused("nvmf://127.0.0.1:8420", "missing subsystem NQN")
    refused("nvmf://127.0.0.1:8420/", "missing subsystem NQN")


def test_nvmf_with_two_path_segments_is_refused() -> None:
    refused(f"nvmf://h/{NQN}/extra", "too many path segments")


def test_nvmf_path_that_is_not_an_nqn_is_refused() -> None:
    refused("nvmf://h/volume-1", "'volume-1' is not an NQN")
    refused("nvmf://h/nqn." + "x" * 220, "is not an NQN")


def test_nvmf_with_user_information_is_refused() -> None:
    refused(f"nvmf://admin@h/{NQN}", "user information")


def test_nvmf_with_a_malformed_ipv6_host_is_refused() -> None:
    refused(f"nvmf://[::1/{NQN}", "malformed IPv6 host")
    refused(f"nvmf://[::1]x/{NQN}", "malformed host and port")


def test_unknown_nvmf_parameter_is_refused_with_the_allowed_ones() -> None:
    refused(f"nvmf://h/{NQN}?keep_alive=5", "'keep_alive'", "uuid, hostnqn, hostid, reftag, guard")


def test_nvmf_and_bdev_uris_take_a_host_identifier_for_reservations() -> None:
    parsed = parse_bdev_uri(f"nvmf://h/{NQN}?hostid={U}")
    assert isinstance(parsed, NvmfUri)
    assert parsed.hostid == uuid.UUID(U)
    loop = parse_bdev_uri(f"bdev:///r0?hostid={U}")
    assert isinstance(loop, LoopbackUri)
    assert loop.hostid == uuid.UUID(U)
    refused("bdev:///r0?hostid=nope", "parameter 'hostid' is not a uuid")


# --------------------------------------------------------------------------- bdev


@pytest.mark.parametrize("scheme", ["bdev", "loopback"])
def test_loopback_uri_names_an_existing_bdev(scheme: str) -> None:
    parsed = parse_bdev_uri(f"{scheme}:///{U}?uuid={U}")
    assert parsed == LoopbackUri(
        uri=f"{scheme}:///{U}?uuid={U}", scheme="bdev", name=U, uuid=uuid.UUID(U)
    )


def test_loopback_without_a_name_is_refused() -> None:
    refused("bdev:///", "missing name")


def test_loopback_refuses_other_parameters() -> None:
    refused("bdev:///b0?blk_size=512", "unknown parameter 'blk_size'", "allowed: uuid, hostid")


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize("uri", ["pcie:///0000:00:04.0", "http://h/x", "lvol:///p/r", "nbd:///x"])
def test_unknown_scheme_is_refused_with_the_known_ones(uri: str) -> None:
    refused(uri, "unknown scheme", "malloc, aio, uring, nvmf, nvmf+tcp, bdev, loopback")


def test_fragment_is_refused() -> None:
    refused("malloc:///m0?size_mb=1#x", "fragment")


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_with_invalid_argument(text: str) -> None:
    if text.startswith("/") and "\x00" not in text:
        parsed = parse_bdev_uri(text)
        assert isinstance(parsed, FileUri)
        assert parsed.path == text
        return
    try:
        parsed = parse_bdev_uri(text)
    except InvalidArgument:
        return
    assert parsed.uri == text
    assert parsed.name


@given(
    name=st.text(st.characters(blacklist_characters="/?#%&\x00"), min_size=1, max_size=20),
    size_mb=st.integers(1, 1 << 20),
    blk=st.sampled_from([512, 4096]),
)
def test_malloc_uri_round_trips_its_name_and_size(name: str, size_mb: int, blk: int) -> None:
    parsed = parse_bdev_uri(f"malloc:///{name}?size_mb={size_mb}&blk_size={blk}")
    assert isinstance(parsed, MallocUri)
    assert parsed.name == name
    assert parsed.num_blocks * parsed.block_size == size_mb << 20
