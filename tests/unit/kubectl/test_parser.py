"""The command line of kubectl-mayastor: what each command takes, and what it refuses.

Parsing only; nothing here talks to an API (the commands themselves run against a
real core agent in tests/integration/kubectl).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator

import pytest

from mayastor.kubectl import change_commands, dump_command, get_commands
from mayastor.kubectl.labels import LabelChange
from mayastor.kubectl.parser import DEFAULT_REST_URL, REST_ENV, build_parser

VOLUME = "ec4e66fd-3b33-4439-b504-d49aba53da26"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Parse `argv`, which must be bad usage (exit status 2); returns stderr."""
    with pytest.raises(SystemExit) as stopped:
        parse(*argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_the_rest_url_defaults_to_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REST_ENV, "http://10.0.0.1:8081")
    assert parse("get", "nodes").rest == "http://10.0.0.1:8081"


def test_the_rest_url_defaults_to_loopback_without_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REST_ENV, raising=False)
    assert parse("get", "nodes").rest == DEFAULT_REST_URL == "http://127.0.0.1:8081"


def test_the_flag_wins_over_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REST_ENV, "http://10.0.0.1:8081")
    assert parse("-r", "http://10.0.0.2:9000", "get", "nodes").rest == "http://10.0.0.2:9000"


@pytest.mark.parametrize(
    "argv",
    [
        ("-o", "yaml", "-r", "http://h:1", "-t", "5", "get", "volumes"),
        ("get", "-o", "yaml", "-r", "http://h:1", "-t", "5", "volumes"),
        ("get", "volumes", "-o", "yaml", "--rest", "http://h:1", "--timeout", "5s"),
    ],
)
def test_global_flags_are_taken_before_the_command_or_anywhere_after_it(
    argv: tuple[str, ...],
) -> None:
    args = parse(*argv)
    assert (args.output, args.rest, args.timeout) == ("yaml", "http://h:1", 5.0)


def test_a_global_flag_after_the_command_overrides_the_one_before() -> None:
    assert parse("-o", "json", "get", "nodes", "-o", "yaml").output == "yaml"


def test_output_defaults_to_a_table() -> None:
    assert parse("get", "nodes").output == "table"


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (("get", "volumes"), get_commands.get_volumes),
        (("get", "volume", VOLUME), get_commands.get_volume),
        (("get", "pools"), get_commands.get_pools),
        (("get", "pool", "p"), get_commands.get_pool),
        (("get", "nodes"), get_commands.get_nodes),
        (("get", "node", "n"), get_commands.get_node),
        (("get", "volume-replica-topologies"), get_commands.get_topologies),
        (("get", "volume-replica-topology", VOLUME), get_commands.get_topology),
        (("get", "rebuild-history", VOLUME), get_commands.get_rebuild_history),
        (("scale", "volume", VOLUME, "2"), change_commands.scale_volume),
        (("label", "node", "n", "a=b"), change_commands.label_node),
        (("label", "pool", "p", "a-"), change_commands.label_pool),
        (("cordon", "node", "n", "l"), change_commands.cordon),
        (("uncordon", "node", "n", "l"), change_commands.uncordon),
        (("dump", "system"), dump_command.dump_system),
        (("create", "pool", "p", "--node", "n", "--disk", "/d"), change_commands.create_pool),
        (("create", "volume", "--size", "1GiB", "--replicas", "1"), change_commands.create_volume),
        (("delete", "pool", "p"), change_commands.delete_pool),
        (("delete", "volume", VOLUME), change_commands.delete_volume),
        (("publish", "volume", VOLUME), change_commands.publish_volume),
        (("unpublish", "volume", VOLUME), change_commands.unpublish_volume),
    ],
)
def test_every_command_reaches_its_handler(argv: tuple[str, ...], handler: object) -> None:
    assert parse(*argv).handler is handler


def test_create_volume_takes_size_replicas_placement_and_labels() -> None:
    args = parse(
        "create", "volume", VOLUME, "--size", "1GiB", "--replicas", "3", "--thin",
        "--no-self-heal", "--label", "app=db", "--node-label", "zone=a",
        "--pool-label", "tier", "--pool-label", "disk=ssd",
    )  # fmt: skip
    assert args.id == uuid.UUID(VOLUME)
    assert (args.size, args.replicas, args.thin, args.self_heal) == (1 << 30, 3, True, False)
    assert args.labels == [("app", "db")]
    assert args.node_labels == [("zone", "a")]
    assert args.pool_labels == [("tier", ""), ("disk", "ssd")]


def test_create_volume_is_thick_and_self_healing_with_no_id_unless_told() -> None:
    args = parse("create", "volume", "--size", "8MiB", "--replicas", "1")
    assert (args.id, args.thin, args.self_heal, args.labels) == (None, False, True, [])


def test_label_takes_several_changes_in_order() -> None:
    args = parse("label", "node", "node-1", "zone=a", "tier-", "--overwrite")
    assert args.changes == [LabelChange("zone", "a"), LabelChange("tier", None)]
    assert args.overwrite


def test_create_pool_takes_its_node_disk_and_labels() -> None:
    args = parse(
        "create", "pool", "pool-1", "--node", "node-1", "--disk", "/dev/sdb", "--label", "zone=a"
    )
    assert (args.id, args.node, args.disks, args.labels) == (
        "pool-1",
        "node-1",
        ["/dev/sdb"],
        [("zone", "a")],
    )


def test_publish_takes_a_node_and_a_frontend_node() -> None:
    args = parse("publish", "volume", VOLUME, "--node", "node-2", "--frontend-node", "app-1")
    assert (args.node, args.frontend_node, args.protocol) == ("node-2", "app-1", "nvmf")


def test_dump_system_takes_a_folder() -> None:
    assert parse("dump", "system", "-d", "/tmp/x").folder == "/tmp/x"
    assert parse("dump", "system", "--folder", "/tmp/y").folder == "/tmp/y"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ((), "required"),
        (("get",), "required"),
        (("get", "volume"), "required"),
        (("get", "volume", "not-a-uuid"), "not a volume id"),
        (("get", "things"), "invalid choice"),
        (("scale", "volume", VOLUME, "0"), "replica count"),
        (("scale", "volume", VOLUME, "256"), "replica count"),
        (("scale", "volume", VOLUME, "two"), "replica count"),
        (("label", "node", "n"), "required"),
        (("label", "node", "n", "zone"), "key=value to set or key- to remove"),
        (("label", "pool", "p", "zone="), "may not be empty"),
        (("cordon", "node", "n"), "required"),
        (("create", "volume", "--size", "1GB", "--replicas", "1"), "decimal units"),
        (("create", "volume", "--replicas", "1"), "--size"),
        (("create", "volume", "--size", "1GiB"), "--replicas"),
        (("create", "volume", "--size", "1GiB", "--replicas", "1", "--label", "x"), "key=value"),
        (("create", "pool", "p", "--disk", "/d"), "--node"),
        (("create", "pool", "p", "--node", "n"), "--disk"),
        (("-o", "xml", "get", "nodes"), "invalid choice"),
        (("-r", "127.0.0.1:8081", "get", "nodes"), "not an http(s) URL"),
        (("-t", "0", "get", "nodes"), "timeout"),
        (("get", "nodes", "extra"), "unrecognized arguments"),
    ],
)
def test_bad_usage_exits_2_saying_what_is_wrong(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    assert says in usage_error(capsys, *argv)


def test_a_bad_rest_url_in_the_environment_is_bad_usage(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REST_ENV, "not a url")
    assert "-r/--rest" in usage_error(capsys, "get", "nodes")


def every_parser(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser in the tree with its command words, the root first."""
    yield "", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for words, found in every_parser(sub):
                    yield f"{name} {words}".strip(), found


PARSERS = list(every_parser(build_parser()))


def test_the_tree_has_every_command_of_the_issue() -> None:
    words = {w for w, _ in PARSERS}
    for command in (
        "get volumes", "get volume", "get pools", "get pool", "get nodes", "get node",
        "get volume-replica-topologies", "get volume-replica-topology", "get rebuild-history",
        "scale volume", "label node", "label pool", "cordon node", "uncordon node",
        "dump system", "create pool", "delete pool", "create volume", "delete volume",
        "publish volume", "unpublish volume",
    ):  # fmt: skip
        assert command in words


@pytest.mark.parametrize("words", [w for w, _ in PARSERS], ids=lambda w: w or "(root)")
def test_help_at_every_level_exits_0_and_describes_the_command(
    capsys: pytest.CaptureFixture[str], words: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(*words.split(), "--help")
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: kubectl-mayastor {words}".rstrip())
    assert "--rest" in text
    parser = dict(PARSERS)[words]
    assert parser.description
    if parser.get_default("handler") is not None:
        assert "example:" in text
