"""Replicas and nexuses shared with DH-HMAC-CHAP secrets through the io-engine's API
and mayastor-client: only a host that proves its secret gets in, the secrets survive a
restart of the io-engine (kept in its state directory, never in listings), and a
share without secrets works as before."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mayastor.bdev import NvmfDevice
from mayastor.cluster.processes import EngineProcess
from mayastor.errors import AuthenticationFailed
from mayastor.nvmf.auth import DhchapSecret, HashId
from mayastor.nvmf.host import ControllerOptions
from tests.integration.conftest import make_sparse_file
from tests.integration.engine.test_sharing import APP_HOST, replica_json

SECRET = DhchapSecret.generate(32, HashId.SHA256)
CTRL_SECRET = DhchapSecret.generate(32)


@pytest.fixture
def replica(engine: EngineProcess, tmp_path: Path) -> EngineProcess:
    disk = make_sparse_file(tmp_path / "disk.img", 128 << 20)
    engine.client("pool", "create", "p1", str(disk), check=True)
    engine.client("replica", "create", "p1", "r1", "--size=16", check=True)
    return engine


def _write_then_read(uri: str, data: bytes, **secrets: DhchapSecret) -> bytes:
    async def run() -> bytes:
        options = ControllerOptions(hostnqn=APP_HOST, **secrets)  # type: ignore[arg-type]
        device = await NvmfDevice.open(uri, options=options)
        try:
            await device.write(0, data)
            return bytes(await device.read(0, len(data) // device.block_size))
        finally:
            await device.close()

    return asyncio.run(run())


def _share(engine: EngineProcess, *extra: str) -> str:
    return engine.client(
        "replica", "share", "p1", "r1", "--allowed-host", APP_HOST, *extra, check=True
    ).stdout.strip()


def test_a_replica_shared_with_a_secret_admits_the_host_that_proves_it(
    replica: EngineProcess,
) -> None:
    uri = _share(replica, "--host-secret", f"{APP_HOST}={SECRET.format()}")
    data = os.urandom(4096)
    assert _write_then_read(uri, data, dhchap_secret=SECRET) == data
    shown = replica_json(replica)
    assert shown["host_authentication"] is True
    assert SECRET.format() not in json.dumps(shown)


def test_a_wrong_or_missing_secret_is_refused(replica: EngineProcess) -> None:
    uri = _share(replica, "--host-secret", f"{APP_HOST}={SECRET.format()}")
    with pytest.raises(AuthenticationFailed):
        _write_then_read(uri, bytes(512), dhchap_secret=DhchapSecret.generate())
    with pytest.raises(AuthenticationFailed):
        _write_then_read(uri, bytes(512))


def test_bidirectional_secrets_through_the_cli(replica: EngineProcess) -> None:
    uri = _share(replica, "--host-secret", f"{APP_HOST}={SECRET.format()},{CTRL_SECRET.format()}")
    data = b"\x33" * 512
    assert _write_then_read(uri, data, dhchap_secret=SECRET, dhchap_ctrl_secret=CTRL_SECRET) == data


def test_the_secrets_survive_a_restart_and_stay_private(
    replica: EngineProcess, tmp_path: Path
) -> None:
    uri = _share(replica, "--host-secret", f"{APP_HOST}={SECRET.format()}")
    replica.stop()
    replica.pools = [f"p1={tmp_path / 'disk.img'}"]
    replica.start()
    with pytest.raises(AuthenticationFailed):
        _write_then_read(uri, bytes(512))
    assert _write_then_read(uri, b"\x05" * 512, dhchap_secret=SECRET) == b"\x05" * 512
    (kept,) = Path(replica.state_dir).glob("dhchap-secrets.json")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_sharing_again_without_secrets_turns_authentication_off(replica: EngineProcess) -> None:
    _share(replica, "--host-secret", f"{APP_HOST}={SECRET.format()}")
    uri = _share(replica)
    assert replica_json(replica)["host_authentication"] is False
    assert _write_then_read(uri, b"\x01" * 512) == b"\x01" * 512


def test_a_malformed_secret_is_refused_and_changes_nothing(replica: EngineProcess) -> None:
    result = replica.client(
        "replica", "share", "p1", "r1", "--host-secret", f"{APP_HOST}=DHHC-1:00:bad:"
    )
    assert result.returncode != 0
    assert "secret of host" in result.stderr
    assert replica_json(replica)["share"] == "NONE"


def test_a_nexus_published_with_a_secret_admits_only_that_host(
    replica: EngineProcess,
) -> None:
    nexus = "6f0c1b2a-3d4e-4f50-8a61-7b8c9d0e1f2a"
    replica.client("nexus", "create", nexus, "8", "bdev:///r1", check=True)
    uri = replica.client(
        "nexus", "publish", nexus, "--host-secret", f"{APP_HOST}={SECRET.format()}", check=True
    ).stdout.strip()
    with pytest.raises(AuthenticationFailed):
        _write_then_read(uri, bytes(512))
    assert _write_then_read(uri, b"\x44" * 512, dhchap_secret=SECRET) == b"\x44" * 512
    (shown,) = json.loads(replica.client("-o", "json", "nexus", "list", check=True).stdout)
    assert shown["host_authentication"] is True


def test_an_io_engine_with_its_secret_file_brings_in_a_guarded_replica(
    engines: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    a = engines("node-a")
    a.client("pool", "create", "p1", str(make_sparse_file(tmp_path / "a.img", 64 << 20)))
    a.client("replica", "create", "p1", "r1", "--size=8", check=True)
    node_b = "nqn.2019-05.io.openebs:node-name:node-b"
    uri = a.client(
        "replica", "share", "p1", "r1", "--host-secret", f"{node_b}={SECRET.format()}",
        check=True,
    ).stdout.strip()  # fmt: skip
    secret_file = tmp_path / "node-b.secret"
    secret_file.write_text(SECRET.format() + "\n")
    b = engines("node-b", extra_args=["--dhchap-secret-file", str(secret_file)])
    assert b.client("bdev", "create", uri, check=True).returncode == 0
    c = engines("node-c")
    refused = c.client("bdev", "create", uri)
    assert refused.returncode != 0
    assert "refused" in refused.stderr or "no secret" in refused.stderr


def test_an_unreadable_secret_file_stops_the_io_engine_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.secret"
    bad.write_text("not a secret\n")
    result = subprocess.run(
        [sys.executable, "-m", "mayastor.engine.main", "--dhchap-secret-file", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--dhchap-secret-file" in result.stderr
