"""Tables: Mayastor's plugin columns from the API's JSON, aligned, ``<none>`` for gaps."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mayastor.kubectl.output import Output, OutputFormat, serialise
from mayastor.kubectl.tables import (
    NODE_HEADERS,
    POOL_HEADERS,
    REBUILD_HISTORY_HEADERS,
    REPLICA_TOPOLOGY_HEADERS,
    VOLUME_HEADERS,
    node_row,
    pool_row,
    rebuild_row,
    render_table,
    replica_of_uri,
    time_cell,
    topologies_rows,
    topology_rows,
    volume_row,
)

MIB = 1 << 20
VOLUME = "00000000-0000-0000-0000-000000000077"
R1 = "6e029479-3dae-4142-8780-f470c5ab3985"
R2 = "99d6c2cd-6324-4256-bfcd-bc8c5de963db"


def published_volume() -> dict[str, Any]:
    return {
        "spec": {
            "uuid": VOLUME,
            "size": 32 * MIB,
            "num_replicas": 3,
            "thin": True,
            "target": {"node": "node-1", "protocol": "nvmf"},
        },
        "state": {
            "uuid": VOLUME,
            "status": "Online",
            "usage": {"allocated": 8 * MIB},
            "target": {"node": "node-1", "deviceUri": "nvmf://..."},
        },
    }


def test_a_published_volume_shows_its_target_node_and_protocol() -> None:
    assert volume_row(published_volume()) == [
        VOLUME,
        "3",
        "node-1",
        "nvmf",
        "Online",
        "32MiB",
        "true",
        "8MiB",
    ]


def test_an_unpublished_volume_shows_none_for_target_and_accessibility() -> None:
    volume = published_volume()
    del volume["spec"]["target"], volume["state"]["target"], volume["state"]["usage"]
    row = volume_row(volume)
    assert row[VOLUME_HEADERS.index("TARGET-NODE")] == "<none>"
    assert row[VOLUME_HEADERS.index("ACCESSIBILITY")] == "<none>"
    assert row[VOLUME_HEADERS.index("ALLOCATED")] == "<none>"


def test_a_pool_shows_capacity_allocated_available_and_committed() -> None:
    pool = {
        "id": "pool-1",
        "spec": {"node": "node-1", "disks": ["/dev/sdb"]},
        "state": {
            "node": "node-1",
            "status": "Online",
            "disks": ["aio:///dev/sdb"],
            "capacity": 252 * MIB,
            "used": 32 * MIB,
            "committed": 96 * MIB,
        },
    }
    assert pool_row(pool) == [
        "pool-1",
        "aio:///dev/sdb",
        "true",
        "node-1",
        "Online",
        "252MiB",
        "32MiB",
        "220MiB",
        "96MiB",
    ]


def test_a_pool_whose_node_is_away_shows_its_spec_and_no_sizes() -> None:
    pool = {
        "id": "pool-1",
        "spec": {"node": "node-1", "disks": ["/dev/sdb"]},
        "state": {"node": "node-1", "status": "Unknown", "disks": ["/dev/sdb"], "capacity": 0},
    }
    row = pool_row(pool)
    assert row[POOL_HEADERS.index("STATUS")] == "Unknown"
    assert row[POOL_HEADERS.index("CAPACITY") :] == ["<none>"] * 4


def test_an_unmanaged_pool_is_not_managed() -> None:
    assert pool_row({"id": "p", "state": {"node": "n"}})[POOL_HEADERS.index("MANAGED")] == "false"


def test_a_cordoned_node_shows_its_cordon_labels() -> None:
    node = {
        "id": "node-2",
        "spec": {
            "grpcEndpoint": "10.0.0.2:10124",
            "cordondrainstate": {"cordonedstate": {"cordonlabels": ["maint", "disk"]}},
        },
        "state": {"grpcEndpoint": "10.0.0.2:10124", "status": "Online", "version": "0.1.0"},
    }
    assert node_row(node) == ["node-2", "10.0.0.2:10124", "Online", "true (maint, disk)", "0.1.0"]


def test_a_node_never_seen_by_this_agent_shows_what_its_spec_says() -> None:
    node = {"id": "node-9", "spec": {"grpcEndpoint": "10.0.0.9:10124", "version": "0.1.0"}}
    row = node_row(node)
    assert row == ["node-9", "10.0.0.9:10124", "<none>", "false", "0.1.0"]
    assert len(row) == len(NODE_HEADERS)


def topology() -> dict[str, Any]:
    return {
        R2: {
            "node": "node-2",
            "pool": "pool-2",
            "state": "Online",
            "child-status": "Degraded",
            "rebuild-progress": 42,
            "usage": {"capacity": 32 * MIB, "allocated": 32 * MIB},
        },
        R1: {
            "node": "node-1",
            "pool": "pool-1",
            "state": "Online",
            "child-status": "Faulted",
            "child-status-reason": "OutOfSync",
            "usage": {"capacity": 32 * MIB, "allocated": 0},
        },
    }


def test_replica_topology_rows_are_in_replica_order_with_child_state_and_rebuild() -> None:
    rows = topology_rows(topology())
    assert [r[0] for r in rows] == [R1, R2]
    assert rows[0][REPLICA_TOPOLOGY_HEADERS.index("REASON")] == "OutOfSync"
    assert rows[0][REPLICA_TOPOLOGY_HEADERS.index("REBUILD")] == "<none>"
    assert rows[1][REPLICA_TOPOLOGY_HEADERS.index("CHILD-STATUS")] == "Degraded"
    assert rows[1][REPLICA_TOPOLOGY_HEADERS.index("REBUILD")] == "42%"


def test_every_volumes_topology_shows_the_volume_once_then_a_tree() -> None:
    three = {**topology(), "f" * 8: {"node": "node-3", "pool": "pool-3", "state": "Online"}}
    rows = topologies_rows({VOLUME: three, "v2": {R1: three[R1]}})
    assert [r[0] for r in rows] == [VOLUME, "├─", "└─", "v2"]


def test_a_rebuild_shows_replica_uuids_sizes_and_times_to_the_second() -> None:
    record = {
        "childUri": f"nvmf://127.0.0.1:8420/nqn.2019-05.io.openebs:{R2}?uuid={R2}",
        "srcUri": f"bdev:///{R1}?uuid={R1}",
        "rebuildJobState": "Completed",
        "blocksTotal": 65536,
        "blocksRecovered": 65536,
        "blocksTransferred": 2048,
        "blockSize": 512,
        "isPartial": True,
        "startTime": "2026-12-04T23:28:23.724684Z",
        "endTime": "2026-12-04T23:28:23.869893+00:00",
    }
    assert rebuild_row(record) == [
        R2,
        R1,
        "Completed",
        "32MiB",
        "32MiB",
        "1MiB",
        "true",
        "2026-12-04T23:28:23Z",
        "2026-12-04T23:28:23Z",
    ]
    assert len(REBUILD_HISTORY_HEADERS) == len(rebuild_row(record))


@pytest.mark.parametrize(
    ("uri", "replica"),
    [
        (f"bdev:///{R1}", R1),
        (f"nvmf://h:1/nqn.2019-05.io.openebs:{R1}", R1),
        (None, "<none>"),
    ],
)
def test_a_child_uri_without_a_uuid_parameter_names_its_replica_by_its_last_part(
    uri: str | None, replica: str
) -> None:
    assert replica_of_uri(uri) == replica


def test_a_time_that_does_not_parse_is_shown_as_it_came() -> None:
    assert time_cell("yesterday") == "yesterday"
    assert time_cell("2026-01-01T10:00:00+02:00") == "2026-01-01T08:00:00Z"


def test_a_table_aligns_columns_two_spaces_apart_without_trailing_blanks() -> None:
    text = render_table(("ID", "STATUS"), [["node-1", "Online"], ["n2", "<none>"]])
    assert text == "ID      STATUS\nnode-1  Online\nn2      <none>\n"


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        render_table(("A", "B", "C"), [["1", "2"]])


CELLS = st.text(alphabet=st.characters(categories=["L", "N", "P"]), min_size=1, max_size=12)


@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.lists(CELLS, min_size=n, max_size=n),
            st.lists(st.lists(CELLS, min_size=n, max_size=n), max_size=6),
        )
    )
)
def test_every_column_starts_at_the_same_place_on_every_line(
    table: tuple[list[str], list[list[str]]],
) -> None:
    headers, rows = table
    lines = render_table(headers, rows).splitlines()
    assert len(lines) == len(rows) + 1
    starts = [0]
    for column in range(len(headers) - 1):
        width = max(len(r[column]) for r in [headers, *rows])
        starts.append(starts[-1] + width + 2)
    for line, cells in zip(lines, [headers, *rows], strict=True):
        for start, value in zip(starts, cells, strict=True):
            assert line[start : start + len(value)] == value


# ============================================================================ output


def test_an_empty_list_prints_no_table_and_says_so_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    Output(OutputFormat.TABLE, out, err).objects([], VOLUME_HEADERS, lambda d: [], "volumes")
    assert out.getvalue() == ""
    assert err.getvalue() == "No volumes found.\n"


def test_an_empty_list_in_json_is_an_empty_array() -> None:
    out = io.StringIO()
    Output(OutputFormat.JSON, out).objects([], VOLUME_HEADERS, lambda d: [], "volumes")
    assert json.loads(out.getvalue()) == []


@pytest.mark.parametrize("fmt", [OutputFormat.JSON, OutputFormat.YAML])
def test_json_and_yaml_carry_the_object_whole_with_exact_sizes(fmt: OutputFormat) -> None:
    volume = published_volume()
    text = serialise(volume, fmt)
    assert (json.loads(text) if fmt is OutputFormat.JSON else yaml.safe_load(text)) == volume


def test_a_change_prints_its_sentence_in_a_table_and_its_object_in_yaml() -> None:
    out = io.StringIO()
    Output(OutputFormat.TABLE, out).done({"id": "n"}, "node n cordoned")
    assert out.getvalue() == "node n cordoned\n"
    out = io.StringIO()
    Output(OutputFormat.YAML, out).done({"id": "n"}, "node n cordoned")
    assert yaml.safe_load(out.getvalue()) == {"id": "n"}
