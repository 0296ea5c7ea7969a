"""The command line of ``kubectl-mayastor``: verbs, resources, flags and their checks.

Shaped after Mayastor's plugin and kubectl: ``VERB RESOURCE [ID] [ARGS]``
(``get volumes``, ``scale volume ID 2``, ``label node ID zone=a``). The global flags
(``-r``, ``-o``, ``-t``) are taken before the verb or anywhere after it. Arguments are
checked here, so bad usage stops with exit status 2 before any call is made: volume
ids must be uuids, sizes binary sizes, labels ``key=value`` or ``key-``.

Each leaf parser sets ``handler`` (a function of the client, the arguments and the
output) and nothing here talks to the API.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from typing import Any

from mayastor import __version__
from mayastor.credentials import rest_client
from mayastor.kubectl import change_commands, dump_command, get_commands
from mayastor.kubectl.labels import parse_label, parse_label_change, parse_label_rule
from mayastor.kubectl.sizes import parse_size
from mayastor.restclient.calls import api_base_url

DEFAULT_REST_URL = "http://127.0.0.1:8081"
REST_ENV = "MAYASTOR_REST"
PROG = "kubectl-mayastor"


def _checked(parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """An argparse type from a parser that raises ValueError (its message is kept)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = what
    return convert


def _volume_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a volume id (a uuid)") from None


def _replica_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a replica count (1-255)") from None
    if not 1 <= count <= 255:
        raise ValueError(f"{count} is not a replica count (1-255)")
    return count


def _seconds(text: str) -> float:
    spelled = text.strip().lower().removesuffix("s")
    try:
        seconds = float(spelled)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds (e.g. 30 or 30s)") from None
    if not 0 < seconds <= 3600:
        raise ValueError(f"{text!r}: the timeout must be above 0 and at most 3600 s")
    return seconds


def _rest_url(text: str) -> str:
    api_base_url(text)
    return text


VOLUME_ID = _checked(_volume_id, "volume id")
SIZE = _checked(parse_size, "size")
REPLICAS = _checked(_replica_count, "replica count")
LABEL = _checked(parse_label, "label")
LABEL_CHANGE = _checked(parse_label_change, "label change")
LABEL_RULE = _checked(parse_label_rule, "label rule")
SECONDS = _checked(_seconds, "seconds")
REST_URL = _checked(_rest_url, "REST URL")

_FORMATTER = argparse.RawDescriptionHelpFormatter


def _global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-r, -o, -t and the credentials: with their defaults on the top parser, unset
    (kept) on the others."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group: argparse.ArgumentParser | argparse._ArgumentGroup = parser
    if not top:
        group = parser.add_argument_group("global options (also taken before the command)")
    group.add_argument(
        "-r",
        "--rest",
        metavar="URL",
        type=REST_URL,
        default=default(os.environ.get(REST_ENV) or DEFAULT_REST_URL),
        help=f"the REST API of the core agent (default: ${REST_ENV}, else {DEFAULT_REST_URL})",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=["table", "json", "yaml"],
        default=default("table"),
        help="output format: a table for people, or every field as json or yaml (default: table)",
    )
    group.add_argument(
        "-t",
        "--timeout",
        metavar="SECONDS",
        type=SECONDS,
        default=default(30.0),
        help="how long to wait for each REST reply (default: 30s)",
    )
    rest_client.add_flags(group, default=default(None))


class _Tree:
    """Adds verb and resource parsers, each with the global flags and its help."""

    def __init__(self, root: argparse.ArgumentParser) -> None:
        self.verbs = root.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    def verb(self, name: str, summary: str) -> argparse._SubParsersAction[Any]:
        parser = self.verbs.add_parser(
            name, help=summary, description=summary, formatter_class=_FORMATTER
        )
        _global_flags(parser, top=False)
        return parser.add_subparsers(dest="resource", required=True, metavar="RESOURCE")

    @staticmethod
    def leaf(
        resources: argparse._SubParsersAction[Any],
        name: str,
        summary: str,
        handler: Callable[..., None],
        examples: str,
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = resources.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example:\n{examples}",
            formatter_class=_FORMATTER,
        )
        _global_flags(parser, top=False)
        parser.set_defaults(handler=handler)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `parse_args` exits with status 2 on bad usage."""
    root = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Operate a Mayastor cluster through the core agent's REST API: see nodes,\n"
            "pools and volumes; scale, label and cordon; dump the system's state. For use\n"
            "without Kubernetes also create and delete pools and volumes, and publish\n"
            "volumes. `COMMAND --help` and `COMMAND RESOURCE --help` tell more."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} get volumes\n"
            f"  {PROG} -o yaml get pool pool-1\n"
            f"  {PROG} scale volume ec4e66fd-3b33-4439-b504-d49aba53da26 3\n"
            f"  {PROG} -r http://10.0.0.1:8081 label node node-1 zone=a\n"
            "\n"
            "exit status: 0 done; 1 refused by the API; 2 bad usage; "
            "3 the REST API cannot be reached.\n"
            f"As `kubectl mayastor ...` when {PROG} is on PATH."
        ),
        formatter_class=_FORMATTER,
    )
    _global_flags(root, top=True)
    root.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    tree = _Tree(root)
    _add_get(tree)
    _add_create(tree)
    _add_delete(tree)
    _add_publish(tree)
    _add_scale(tree)
    _add_label(tree)
    _add_cordon(tree)
    _add_drain(tree)
    _add_dump(tree)
    return root


def _add_get(tree: _Tree) -> None:
    get = tree.verb("get", "show volumes, pools, nodes, replica topologies, rebuild history")
    tree.leaf(
        get, "volumes", "list every volume", get_commands.get_volumes, f"  {PROG} get volumes"
    )
    volume = tree.leaf(
        get, "volume", "show one volume", get_commands.get_volume, f"  {PROG} get volume UUID"
    )
    volume.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")
    pools = tree.leaf(
        get,
        "pools",
        "list every pool (or those of one node)",
        get_commands.get_pools,
        f"  {PROG} get pools --node node-1",
    )
    pools.add_argument("--node", metavar="NODE", help="only the pools of this node")
    pool = tree.leaf(
        get, "pool", "show one pool", get_commands.get_pool, f"  {PROG} get pool pool-1"
    )
    pool.add_argument("id", metavar="ID", help="the pool's id")
    tree.leaf(get, "nodes", "list every node", get_commands.get_nodes, f"  {PROG} get nodes")
    node = tree.leaf(
        get, "node", "show one node", get_commands.get_node, f"  {PROG} get node node-1"
    )
    node.add_argument("id", metavar="ID", help="the node's id")
    tree.leaf(
        get,
        "volume-replica-topologies",
        "list the replicas of every volume: where each is and how it is",
        get_commands.get_topologies,
        f"  {PROG} get volume-replica-topologies",
    )
    topology = tree.leaf(
        get,
        "volume-replica-topology",
        "list the replicas of one volume: where each is and how it is",
        get_commands.get_topology,
        f"  {PROG} get volume-replica-topology UUID",
    )
    topology.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")
    history = tree.leaf(
        get,
        "rebuild-history",
        "list the rebuilds of a volume's target",
        get_commands.get_rebuild_history,
        f"  {PROG} get rebuild-history UUID",
    )
    history.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")
    events = tree.leaf(
        get,
        "events",
        "list what happened (nodes lost and back, children faulted, rebuilds, healing) "
        "and why, oldest first",
        get_commands.get_events,
        f"  {PROG} get events --volume UUID",
    )
    about = events.add_mutually_exclusive_group()
    about.add_argument("--volume", type=VOLUME_ID, help="only the events of this volume")
    about.add_argument("--node", help="only the events of this node")
    events.add_argument(
        "--category",
        choices=["node", "pool", "volume", "replica", "rebuild", "target"],
        help="only events of this kind",
    )
    events.add_argument(
        "--max", type=int, default=0, metavar="N", help="only the last N (default: all kept)"
    )


def _add_create(tree: _Tree) -> None:
    create = tree.verb("create", "create a pool or a volume (for use without Kubernetes)")
    pool = tree.leaf(
        create,
        "pool",
        "create a pool on a node's disk, or import it when the disk holds it",
        change_commands.create_pool,
        f"  {PROG} create pool pool-1 --node node-1 --disk /dev/sdb --label zone=a",
    )
    pool.add_argument("id", metavar="ID", help="the pool's id")
    pool.add_argument("--node", required=True, help="the node whose disk it is")
    pool.add_argument(
        "--disk",
        dest="disks",
        action="append",
        required=True,
        help="the pool's disk: a path or a bdev URI (aio:///dev/sdb)",
    )
    pool.add_argument(
        "--label",
        dest="labels",
        metavar="KEY=VALUE",
        type=LABEL,
        action="append",
        default=[],
        help="a label of the pool (repeatable)",
    )
    volume = tree.leaf(
        create,
        "volume",
        "create a volume: its replicas on different nodes",
        change_commands.create_volume,
        f"  {PROG} create volume --size 1GiB --replicas 3 --thin --pool-label zone=a",
    )
    volume.add_argument(
        "id", metavar="ID", nargs="?", type=VOLUME_ID, help="its uuid (a new one when left out)"
    )
    volume.add_argument(
        "--size", type=SIZE, required=True, help="bytes, or with a binary unit: 1GiB, 512MiB"
    )
    volume.add_argument(
        "--replicas", type=REPLICAS, required=True, help="how many replicas (1-255)"
    )
    volume.add_argument(
        "--thin", action="store_true", help="thin provisioned: space is taken on first write"
    )
    volume.add_argument(
        "--no-self-heal",
        dest="self_heal",
        action="store_false",
        help="do not replace faulted replicas",
    )
    volume.add_argument(
        "--label",
        dest="labels",
        metavar="KEY=VALUE",
        type=LABEL,
        action="append",
        default=[],
        help="a label of the volume (repeatable)",
    )
    volume.add_argument(
        "--node-label",
        dest="node_labels",
        metavar="KEY[=VALUE]",
        type=LABEL_RULE,
        action="append",
        default=[],
        help="place replicas only on nodes with this label (any value when only KEY)",
    )
    volume.add_argument(
        "--pool-label",
        dest="pool_labels",
        metavar="KEY[=VALUE]",
        type=LABEL_RULE,
        action="append",
        default=[],
        help="place replicas only in pools with this label (any value when only KEY)",
    )


def _add_delete(tree: _Tree) -> None:
    delete = tree.verb("delete", "delete a pool or a volume (for use without Kubernetes)")
    pool = tree.leaf(
        delete,
        "pool",
        "destroy a pool that holds no replica",
        change_commands.delete_pool,
        f"  {PROG} delete pool pool-1",
    )
    pool.add_argument("id", metavar="ID", help="the pool's id")
    pool.add_argument("--node", help="the pool's node (when ids repeat across nodes)")
    volume = tree.leaf(
        delete,
        "volume",
        "destroy a volume, its target and its replicas",
        change_commands.delete_volume,
        f"  {PROG} delete volume UUID",
    )
    volume.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")


def _add_publish(tree: _Tree) -> None:
    publish = tree.verb(
        "publish", "publish a volume over NVMe/TCP and print its URI (without Kubernetes)"
    )
    volume = tree.leaf(
        publish,
        "volume",
        "create the volume's target (a nexus over its replicas) and print its URI",
        change_commands.publish_volume,
        f"  {PROG} publish volume UUID --frontend-node app-1",
    )
    volume.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")
    volume.add_argument("--node", help="the node to run the target on (else one is picked)")
    volume.add_argument(
        "--frontend-node",
        metavar="NODE",
        help="the node that will connect; only its host NQN is allowed",
    )
    volume.add_argument("--protocol", choices=["nvmf"], default="nvmf", help="nvmf (the one)")
    unpublish = tree.verb("unpublish", "unpublish a volume (for use without Kubernetes)")
    volume = tree.leaf(
        unpublish,
        "volume",
        "remove the volume's target; its replicas stay",
        change_commands.unpublish_volume,
        f"  {PROG} unpublish volume UUID",
    )
    volume.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")
    volume.add_argument("--force", action="store_true", help="forget a target whose node is gone")


def _add_scale(tree: _Tree) -> None:
    scale = tree.verb("scale", "change how many replicas a volume has")
    volume = tree.leaf(
        scale,
        "volume",
        "set a volume's replica count; new replicas are rebuilt from the others",
        change_commands.scale_volume,
        f"  {PROG} scale volume UUID 3",
    )
    volume.add_argument("id", metavar="ID", type=VOLUME_ID, help="the volume's uuid")
    volume.add_argument("replicas", metavar="N", type=REPLICAS, help="replica count (1-255)")


def _add_label(tree: _Tree) -> None:
    label = tree.verb("label", "set (key=value) or remove (key-) labels of a node or pool")
    for resource, handler in (
        ("node", change_commands.label_node),
        ("pool", change_commands.label_pool),
    ):
        parser = tree.leaf(
            label,
            resource,
            f"set or remove labels of a {resource}, in the order given",
            handler,
            f"  {PROG} label {resource} ID zone=a\n  {PROG} label {resource} ID zone-",
        )
        parser.add_argument("id", metavar="ID", help=f"the {resource}'s id")
        parser.add_argument(
            "changes",
            metavar="LABEL",
            nargs="+",
            type=LABEL_CHANGE,
            help="key=value to set, key- to remove",
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace a label that has another value"
        )


def _add_cordon(tree: _Tree) -> None:
    for verb, summary, handler in (
        ("cordon", "cordon a node: no new replicas or targets go there", change_commands.cordon),
        (
            "uncordon",
            "remove a cordon label; a node with none left takes new work again",
            change_commands.uncordon,
        ),
    ):
        resources = tree.verb(verb, summary)
        node = tree.leaf(
            resources, "node", summary, handler, f"  {PROG} {verb} node node-1 maintenance"
        )
        node.add_argument("id", metavar="ID", help="the node's id")
        node.add_argument("label", metavar="LABEL", help="the cordon's label (any word)")


def _add_drain(tree: _Tree) -> None:
    summary = "cordon a node and move every volume target off it; waits until it is drained"
    resources = tree.verb("drain", summary)
    node = tree.leaf(
        resources, "node", summary, change_commands.drain, f"  {PROG} drain node node-1 upgrade"
    )
    node.add_argument("id", metavar="ID", help="the node's id")
    node.add_argument("label", metavar="LABEL", help="the drain's label (uncordon removes it)")
    node.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up waiting after this long (exit 1; the drain goes on; default: 300)",
    )


def _add_dump(tree: _Tree) -> None:
    dump = tree.verb("dump", "write the system's specs and states to files")
    system = tree.leaf(
        dump,
        "system",
        "write nodes, pools, volumes, replicas, nexuses, specs and every volume's "
        "rebuild history to a folder (json, or yaml with -o yaml)",
        dump_command.dump_system,
        f"  {PROG} dump system -d /tmp/mayastor-dump",
    )
    system.add_argument(
        "-d",
        "--folder",
        metavar="DIR",
        help="where to write (made when missing; default: ./mayastor-dump-<UTC time>)",
    )
