"""``dump system``, and how kubectl-mayastor fails: exit status 1, 2 and 3 with their
messages, against a real core agent (or none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from mayastor.restclient import RestClient
from tests.integration.kubectl.conftest import Kubectl
from tests.support.cluster import TestCluster

pytestmark = pytest.mark.slow

MIB = 1 << 20
VOLUMES = [str(uuid.UUID(int=n)) for n in (0xA1, 0xA2, 0xA3)]
PARTS = ("nodes", "pools", "volumes", "replicas", "nexuses", "specs")


def make_volumes(cluster: TestCluster, published: str | None = None) -> None:
    for volume in VOLUMES:
        cluster.rest.put(
            f"/volumes/{volume}",
            {"size": 8 * MIB, "replicas": 2, "thin": True, "policy": {"self_heal": True}},
        )
    if published:
        cluster.rest.put(
            f"/volumes/{published}/target", {"protocol": "nvmf", "publish_context": {}}
        )


def test_dump_system_writes_every_part_as_json_files_that_parse(
    cluster: TestCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    make_volumes(cluster, published=VOLUMES[0])
    folder = tmp_path / "dump"
    run = kubectl.ok("dump", "system", "--folder", str(folder))
    assert run.out == f"system dumped to {folder} ({len(PARTS) + len(VOLUMES)} files)\n"
    for part in PARTS:
        assert json.loads((folder / f"{part}.json").read_text()) is not None
    assert json.loads((folder / "nodes.json").read_text()) == cluster.rest.get("/nodes")
    assert json.loads((folder / "specs.json").read_text()) == cluster.rest.get("/specs")
    assert sorted(v["spec"]["uuid"] for v in json.loads((folder / "volumes.json").read_text())) == (
        VOLUMES
    )
    histories = sorted(p.name for p in (folder / "rebuild-history").iterdir())
    assert histories == [f"{v}.json" for v in VOLUMES]
    history = json.loads((folder / "rebuild-history" / f"{VOLUMES[0]}.json").read_text())
    assert history["records"] == []
    assert not (folder / "errors.json").exists()


def test_dump_system_in_yaml_writes_yaml_files_and_a_yaml_summary(
    cluster: TestCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    make_volumes(cluster)
    folder = tmp_path / "a" / "new" / "folder"
    summary = kubectl.ok("-o", "yaml", "dump", "system", "-d", str(folder)).yaml()
    assert summary["folder"] == str(folder)
    assert summary["errors"] == []
    assert sorted(summary["files"]) == sorted(
        [f"{p}.yaml" for p in PARTS] + [f"rebuild-history/{v}.yaml" for v in VOLUMES]
    )
    for name in summary["files"]:
        assert yaml.safe_load((folder / name).read_text()) is not None
    assert yaml.safe_load((folder / "pools.yaml").read_text()) == cluster.rest.get("/pools")


def test_dump_system_without_a_folder_writes_a_new_one_in_the_current_folder(
    cluster: TestCluster, kubectl: Kubectl
) -> None:
    run = kubectl.ok("dump", "system")
    [made] = list(kubectl.cwd.iterdir())
    assert made.name.startswith("mayastor-dump-")
    assert str(made) in run.out
    assert (made / "nodes.json").is_file()


def test_dump_system_into_a_folder_it_cannot_write_fails_saying_where(
    cluster: TestCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    refused = kubectl.refused("dump", "system", "-d", str(blocker / "dump"))
    assert f"cannot write the dump to {blocker / 'dump'}" in refused.err


def test_an_api_that_cannot_be_reached_exits_3_naming_the_url_and_how_to_set_it(
    nowhere: Kubectl,
) -> None:
    run = nowhere("get", "volumes")
    assert run.status == 3, str(run)
    assert run.out == ""
    assert run.err.startswith(f"error: cannot reach the REST API at {nowhere.url}: ")
    assert "-r/--rest" in run.err
    assert "$MAYASTOR_REST" in run.err


def test_the_flag_is_used_over_the_environment_variable(
    cluster: TestCluster, nowhere: Kubectl
) -> None:
    run = nowhere("-r", cluster.core.rest_url, "get", "nodes")
    assert run.status == 0, str(run)
    assert len(run.table()) == 3


def test_the_environment_variable_names_the_api(
    cluster: TestCluster, kubectl: Kubectl, nowhere: Kubectl
) -> None:
    elsewhere = kubectl("get", "nodes", env={"MAYASTOR_REST": nowhere.url})
    assert elsewhere.status == 3
    assert nowhere.url in elsewhere.err
    assert kubectl("get", "nodes").status == 0


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("get",),
        ("get", "volume", "not-a-uuid"),
        ("frobnicate", "volume"),
        ("scale", "volume", str(uuid.UUID(int=1)), "0"),
        ("label", "node", "node-1", "zone"),
        ("create", "volume", "--size", "1GB", "--replicas", "1"),
        ("-r", "not-a-url", "get", "nodes"),
    ],
)
def test_bad_usage_exits_2_before_any_call(nowhere: Kubectl, argv: tuple[str, ...]) -> None:
    run = nowhere(*argv)
    assert run.status == 2, str(run)
    assert run.err.startswith("usage: kubectl-mayastor")
    assert "cannot reach" not in run.err


def test_a_refusal_exits_1_with_kind_and_message(cluster: TestCluster, kubectl: Kubectl) -> None:
    run = kubectl("get", "pool", "pool-none")
    assert run.status == 1
    assert run.out == ""
    assert run.err == "error: NotFound: pool 'pool-none' not found\n"


def test_the_installed_command_is_kubectl_mayastor() -> None:
    command = Path(sys.executable).parent / "kubectl-mayastor"
    done = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert (done.returncode, done.stdout) == (0, "kubectl-mayastor 0.1.0\n")


def test_the_rest_client_pages_through_every_volume_of_a_real_agent(
    cluster: TestCluster,
) -> None:
    make_volumes(cluster)
    with RestClient(cluster.core.rest_url) as client:
        paged = client.all_volumes(page_size=2)
        assert [v["spec"]["uuid"] for v in paged] == VOLUMES
        assert paged == client.get_volumes()["entries"]
