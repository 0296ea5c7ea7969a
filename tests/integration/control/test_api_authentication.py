"""Authenticated APIs: a secure one-machine cluster refuses whoever has no credentials.

One cluster for the module (`mayastor-cluster up --secure`, one io-engine): gRPC over
TLS with client certificates from its private CA, REST over HTTPS with an admin and a
read-only token. The io-engine registering and its pool being made already prove the
right credentials work between the processes; the tests show each refusal.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.empty_pb2 import Empty

from mayastor.api.v1 import host_pb2_grpc, registration_pb2, registration_pb2_grpc
from mayastor.cluster.launcher import ClusterLayout, OneMachineCluster
from mayastor.cluster.processes import CoreAgentProcess, free_port
from mayastor.cluster.security import ClusterSecurity
from mayastor.credentials import grpc_tls
from mayastor.credentials.private_ca import IssuedCertificate, PrivateCa
from mayastor.credentials.rest_client import RestClientCredentials
from mayastor.credentials.rest_tokens import Role


class Secure:
    def __init__(self, cluster: OneMachineCluster, layout: ClusterLayout, said: str) -> None:
        self.cluster = cluster
        self.layout = layout
        self.said = said
        self.security: ClusterSecurity = cluster.security()

    @property
    def engine_endpoint(self) -> str:
        return f"127.0.0.1:{self.layout.nodes[0].grpc_port}"

    def http(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=f"{self.layout.rest_url}/v0",
            verify=_trusting(self.security.ca.certificate),
            headers=headers,
            timeout=30.0,
        )

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mayastor.kubectl.main", "-r", self.layout.rest_url, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def mayastor_client(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "mayastor.cli.client", "-b", self.engine_endpoint]
        return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)


def _trusting(ca: Path, client: IssuedCertificate | None = None) -> ssl.SSLContext:
    certificate = client.certificate if client else None
    return RestClientCredentials(
        ca=ca, certificate=certificate, key=client.key if client else None
    ).ssl_context()


def _consecutive_free_ports(count: int) -> int:
    """A port P such that P .. P+count-1 are all free now."""
    while True:
        base = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    stack.enter_context(socket.create_server(("127.0.0.1", port)))
        except OSError:
            continue
        return base


def _free_ports_outside(taken: range, count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def _cluster_command(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mayastor.cluster.main", "--dir", str(folder), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    folder = tmp_path_factory.mktemp("secure-cluster")
    engine_base = _consecutive_free_ports(3)
    rest_port, grpc_port = _free_ports_outside(range(engine_base, engine_base + 3), 2)
    try:
        up = _cluster_command(
            folder, "up", "--secure", "--nodes", "1", "--disk-size", "128MiB",
            "--rest-port", str(rest_port), "--grpc-port", str(grpc_port),
            "--engine-port-base", str(engine_base),
        )  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        layout = ClusterLayout.load(folder)
        assert layout is not None
        yield Secure(OneMachineCluster(folder, say=lambda _: None), layout, up.stdout)
    finally:
        _cluster_command(folder, "down")


def _pem(secure: Secure, name: str) -> list[str]:
    return secure.security.certificate(name).flags("--tls")


# ------------------------------------------------------------------ gRPC


def test_up_secure_prints_the_credentials_to_use(secure: Secure) -> None:
    tls = secure.security.folder
    assert f"--ca-cert {tls}/ca.crt --token-file {tls}/admin.token get nodes" in secure.said
    assert f"--tls-cert {tls}/client.crt" in secure.said


def test_the_io_engine_registered_with_the_core_agent_over_tls(secure: Secure) -> None:
    with secure.http(secure.security.token(Role.READ_ONLY)) as http:
        node = http.get(f"/nodes/{secure.layout.nodes[0].name}").json()
    assert node["state"]["status"] == "Online"


def test_mayastor_client_without_a_certificate_is_refused(secure: Secure) -> None:
    result = secure.mayastor_client("pool", "list")
    assert result.returncode == 3
    assert "--tls-cert" in result.stderr


def test_mayastor_client_with_the_clusters_certificate_lists_the_pool(secure: Secure) -> None:
    result = secure.mayastor_client(*_pem(secure, "client"), "pool", "list")
    assert result.returncode == 0, result.stderr
    assert f"pool-{secure.layout.nodes[0].name}" in result.stdout


def test_a_certificate_of_another_ca_is_refused_by_the_io_engine(
    secure: Secure, tmp_path: Path
) -> None:
    stranger = PrivateCa.create(tmp_path / "other-ca").issue("client", ["127.0.0.1"])
    tls = grpc_tls.GrpcTls.load(stranger.certificate, stranger.key, secure.security.ca.certificate)
    with (
        grpc_tls.sync_channel(secure.engine_endpoint, tls) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        host_pb2_grpc.HostRpcStub(channel).GetMayastorInfo(Empty(), timeout=10)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_the_core_agents_grpc_refuses_a_plain_registration(secure: Secure) -> None:
    endpoint = secure.layout.registration_endpoint
    with grpc.insecure_channel(endpoint) as channel:
        stub = registration_pb2_grpc.RegistrationStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Register(
                registration_pb2.RegisterNodeRequest(id="intruder", grpc_endpoint="127.0.0.1:1"),
                timeout=10,
            )
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    with secure.http(secure.security.token(Role.READ_ONLY)) as http:
        assert http.get("/nodes/intruder").status_code == 404


# ------------------------------------------------------------------ REST


def test_rest_without_a_token_is_unauthenticated(secure: Secure) -> None:
    with secure.http(None) as http:
        reply = http.get("/nodes")
    assert reply.status_code == 401
    assert reply.json()["kind"] == "Unauthenticated"
    assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_rest_with_an_unknown_token_is_unauthenticated(secure: Secure) -> None:
    with secure.http("not-a-token-of-this-cluster") as http:
        assert http.get("/nodes").status_code == 401


def test_a_read_only_token_reads(secure: Secure) -> None:
    with secure.http(secure.security.token(Role.READ_ONLY)) as http:
        reply = http.get("/pools")
    assert reply.status_code == 200
    assert [p["id"] for p in reply.json()] == [f"pool-{secure.layout.nodes[0].name}"]


def test_a_read_only_token_cannot_create_a_volume_and_nothing_is_made(secure: Secure) -> None:
    volume = str(uuid.uuid4())
    body = {"size": 8 << 20, "replicas": 1, "thin": False, "policy": {"self_heal": True}}
    with secure.http(secure.security.token(Role.READ_ONLY)) as http:
        reply = http.put(f"/volumes/{volume}", json=body)
        assert reply.status_code == 403
        assert reply.json()["kind"] == "Unauthorized"
        assert http.get(f"/volumes/{volume}").status_code == 404


def test_an_admin_token_creates_and_destroys_a_volume(secure: Secure) -> None:
    volume = str(uuid.uuid4())
    body = {"size": 8 << 20, "replicas": 1, "thin": False, "policy": {"self_heal": True}}
    with secure.http(secure.security.token(Role.ADMIN)) as http:
        assert http.put(f"/volumes/{volume}", json=body).status_code == 200
        assert http.delete(f"/volumes/{volume}").status_code in (200, 204)


def test_plain_http_to_the_https_api_gets_no_answer(secure: Secure) -> None:
    url = secure.layout.rest_url.replace("https://", "http://")
    with httpx.Client(timeout=10) as http, pytest.raises(httpx.HTTPError):
        http.get(f"{url}/v0/nodes").raise_for_status()


def test_kubectl_mayastor_with_the_clusters_credentials_lists_nodes(secure: Secure) -> None:
    result = secure.kubectl(*secure.security.kubectl_flags(Role.READ_ONLY), "get", "nodes")
    assert result.returncode == 0, result.stderr
    assert secure.layout.nodes[0].name in result.stdout


def test_kubectl_mayastor_without_a_token_is_refused_with_a_hint(secure: Secure) -> None:
    ca = ["--ca-cert", str(secure.security.ca.certificate)]
    result = secure.kubectl(*ca, "get", "nodes")
    assert result.returncode == 1
    assert "Unauthenticated" in result.stderr
    assert "--token-file" in result.stderr


def test_kubectl_mayastor_without_the_ca_names_the_flag(secure: Secure) -> None:
    token = ["--token-file", str(secure.security.token_file())]
    result = secure.kubectl(*token, "get", "nodes")
    assert result.returncode == 3
    assert "--ca-cert" in result.stderr


def test_kubectl_mayastor_with_a_read_only_token_cannot_create_a_volume(secure: Secure) -> None:
    flags = secure.security.kubectl_flags(Role.READ_ONLY)
    volume = ["create", "volume", str(uuid.uuid4()), "--size", "8MiB", "--replicas", "1"]
    result = secure.kubectl(*flags, *volume)
    assert result.returncode == 1
    assert "Unauthorized" in result.stderr


# ------------------------------------------------------------------ REST client certificates


@dataclass(frozen=True)
class CertCore:
    """A core agent whose REST API requires a client certificate signed by our CA."""

    url: str
    ca: Path
    client: IssuedCertificate


@pytest.fixture(scope="module")
def cert_core(secure: Secure, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertCore]:
    issued = secure.security.certificate("core")
    process = CoreAgentProcess(
        tmp_path_factory.mktemp("cert-core"),
        extra_args=[
            "--rest-tls-cert", str(issued.certificate), "--rest-tls-key", str(issued.key),
            "--rest-tls-client-ca", str(issued.ca),
        ],
    )  # fmt: skip
    process.start(wait_serving=False)
    core = CertCore(
        f"https://127.0.0.1:{process.rest_port}/v0/nodes",
        issued.ca,
        secure.security.certificate("client"),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(core.url, verify=_trusting(core.ca, core.client))
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or not process.running:
                    pytest.fail(f"the core agent did not serve HTTPS:\n{process.log_tail()}")
                time.sleep(0.1)
        yield core
    finally:
        process.stop()


def test_rest_requiring_client_certificates_refuses_a_client_without_one(
    cert_core: CertCore,
) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(cert_core.url, verify=_trusting(cert_core.ca))


def test_rest_requiring_client_certificates_serves_a_client_with_one(cert_core: CertCore) -> None:
    reply = httpx.get(cert_core.url, verify=_trusting(cert_core.ca, cert_core.client))
    assert reply.status_code == 200
