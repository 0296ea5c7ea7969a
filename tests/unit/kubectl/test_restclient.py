"""The REST client on its own: calls as sent, replies decoded, errors mapped by status.

The server here is httpx's MockTransport (answers written in the test) or a socket
on 127.0.0.1 that refuses or never answers; the plugin itself is tested against a
real core agent in tests/integration/kubectl.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mayastor.restclient import (
    AsyncRestClient,
    BadRequest,
    Conflict,
    InsufficientStorage,
    NotFound,
    PreconditionFailed,
    RestClient,
    RestError,
    RestUnreachable,
    ServiceUnavailable,
)
from mayastor.restclient.calls import api_base_url

URL = "http://core.test:8081"
VOLUME = uuid.UUID(int=0xABC)

Handler = Callable[[httpx.Request], httpx.Response]


def error_body(kind: str, message: str) -> dict[str, str]:
    return {"kind": kind, "message": message, "details": message}


class Recorder:
    """A MockTransport handler that records requests and answers from a table."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder) -> Iterator[RestClient]:
    with RestClient(URL, transport=httpx.MockTransport(recorder)) as made:
        yield made


def answering(status: int, body: Any = None, content: bytes | None = None) -> RestClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content)
        return httpx.Response(status, json=body)

    return RestClient(URL, transport=httpx.MockTransport(answer))


# ============================================================================ calls as sent


def test_calls_go_under_v0_of_the_server_url(client: RestClient, recorder: Recorder) -> None:
    client.get_nodes()
    assert recorder.last.method == "GET"
    assert str(recorder.last.url) == "http://core.test:8081/v0/nodes"


def test_path_segments_given_by_callers_are_escaped(client: RestClient, recorder: Recorder) -> None:
    client.get_pool("a pool/with?odd#chars")
    assert recorder.last.url.raw_path == b"/v0/pools/a%20pool%2Fwith%3Fodd%23chars"


def test_a_label_goes_in_the_path_as_key_equals_value_with_overwrite_as_a_query(
    client: RestClient, recorder: Recorder
) -> None:
    client.label_node("node-1", "zone", "a", overwrite=True)
    assert recorder.last.method == "PUT"
    assert recorder.last.url.raw_path == b"/v0/nodes/node-1/label/zone=a?overwrite=true"


def test_create_volume_sends_mayastors_body(client: RestClient, recorder: Recorder) -> None:
    client.create_volume(
        VOLUME,
        size=32 << 20,
        replicas=3,
        thin=True,
        self_heal=False,
        topology={"pool_topology": {"labelled": {"inclusion": {"zone": "a"}}}},
        labels={"app": "db"},
    )
    assert recorder.last.method == "PUT"
    assert recorder.last.url.path == f"/v0/volumes/{VOLUME}"
    assert json.loads(recorder.last.content) == {
        "size": 32 << 20,
        "replicas": 3,
        "thin": True,
        "policy": {"self_heal": False},
        "topology": {"pool_topology": {"labelled": {"inclusion": {"zone": "a"}}}},
        "labels": {"app": "db"},
    }


def test_publish_sends_only_the_fields_given(client: RestClient, recorder: Recorder) -> None:
    client.publish_volume(VOLUME, frontend_node="app-1")
    assert recorder.last.url.path == f"/v0/volumes/{VOLUME}/target"
    assert json.loads(recorder.last.content) == {
        "protocol": "nvmf",
        "publish_context": {},
        "frontend_node": "app-1",
    }


def test_unpublish_sends_force_as_a_query(client: RestClient, recorder: Recorder) -> None:
    client.unpublish_volume(VOLUME, force=True)
    assert recorder.last.method == "DELETE"
    assert recorder.last.url.params["force"] == "true"


def test_a_call_without_a_body_sends_none(client: RestClient, recorder: Recorder) -> None:
    client.scale_volume(VOLUME, 2)
    assert recorder.last.url.path == f"/v0/volumes/{VOLUME}/replica_count/2"
    assert recorder.last.content == b""


def test_delete_pool_on_a_node_uses_the_node_path(client: RestClient, recorder: Recorder) -> None:
    client.delete_pool("pool-1", node_id="node-1")
    assert recorder.last.url.path == "/v0/nodes/node-1/pools/pool-1"


def test_listing_every_volume_follows_next_token_page_by_page() -> None:
    pages = {
        None: {"entries": [{"n": 1}, {"n": 2}], "next_token": 2},
        "2": {"entries": [{"n": 3}, {"n": 4}], "next_token": 4},
        "4": {"entries": [{"n": 5}]},
    }
    asked: list[tuple[str | None, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("starting_token")
        asked.append((request.url.params.get("max_entries"), token))
        return httpx.Response(200, json=pages[token])

    with RestClient(URL, transport=httpx.MockTransport(answer)) as client:
        volumes = client.all_volumes(page_size=2)
    assert [v["n"] for v in volumes] == [1, 2, 3, 4, 5]
    assert asked == [("2", None), ("2", "2"), ("2", "4")]


# ============================================================================ replies


def test_a_reply_is_returned_as_decoded_json() -> None:
    with answering(200, [{"id": "node-1"}]) as client:
        assert client.get_nodes() == [{"id": "node-1"}]


def test_a_reply_with_no_content_is_none() -> None:
    with answering(204, content=b"") as client:
        assert client.delete_volume(VOLUME) is None


@pytest.mark.parametrize(
    ("status", "kind", "klass"),
    [
        (400, "InvalidArgument", BadRequest),
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", Conflict),
        (409, "InUse", Conflict),
        (412, "FailedPrecondition", PreconditionFailed),
        (503, "Unavailable", ServiceUnavailable),
        (507, "ResourceExhausted", InsufficientStorage),
        (500, "Internal", RestError),
    ],
)
def test_an_error_reply_raises_the_class_of_its_status_with_kind_and_message(
    status: int, kind: str, klass: type[RestError]
) -> None:
    with (
        answering(status, error_body(kind, "it went wrong")) as client,
        pytest.raises(klass) as caught,
    ):
        client.get_volume(VOLUME)
    assert type(caught.value) is klass
    assert (caught.value.status, caught.value.kind) == (status, kind)
    assert caught.value.message == "it went wrong"
    assert (caught.value.method, caught.value.path) == ("GET", f"/volumes/{VOLUME}")
    assert str(caught.value) == f"{kind}: it went wrong"


def test_an_error_reply_that_is_not_the_api_body_is_kind_deserialize_with_its_text() -> None:
    with (
        answering(502, content=b"<html>Bad Gateway</html>") as client,
        pytest.raises(RestError) as caught,
    ):
        client.get_nodes()
    assert (caught.value.status, caught.value.kind) == (502, "Deserialize")
    assert "Bad Gateway" in caught.value.message


def test_a_successful_reply_that_is_not_json_is_kind_deserialize() -> None:
    with answering(200, content=b"not json") as client, pytest.raises(RestError) as caught:
        client.get_nodes()
    assert caught.value.kind == "Deserialize"
    assert "/v0/nodes" in caught.value.message


# ============================================================================ no answer


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (into its backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_a_refused_connection_is_unreachable_naming_the_server_url(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    with RestClient(url) as client, pytest.raises(RestUnreachable) as caught:
        client.get_nodes()
    assert caught.value.url == url
    assert url in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_server_that_never_answers_is_unreachable_after_the_timeout(silent_server: int) -> None:
    with (
        RestClient(f"http://127.0.0.1:{silent_server}", timeout=0.3) as client,
        pytest.raises(RestUnreachable) as caught,
    ):
        client.get_nodes()
    assert caught.value.reason.startswith("timed out")


def test_a_cut_connection_is_unreachable() -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected", request=request)

    with (
        RestClient(URL, transport=httpx.MockTransport(cut)) as client,
        pytest.raises(RestUnreachable, match="server disconnected"),
    ):
        client.get_nodes()


# ============================================================================ server URL


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081/v0"),
        ("http://127.0.0.1:8081/", "http://127.0.0.1:8081/v0"),
        ("http://127.0.0.1:8081/v0", "http://127.0.0.1:8081/v0"),
        ("https://core.example/mayastor/", "https://core.example/mayastor/v0"),
    ],
)
def test_the_server_url_may_end_with_a_slash_or_v0(given: str, base: str) -> None:
    assert api_base_url(given) == base


@pytest.mark.parametrize(
    "bad", ["127.0.0.1:8081", "ftp://host", "http://", "http://host:port", "http://h/?q=1", ""]
)
def test_a_url_that_is_not_http_with_a_host_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        RestClient(bad)


# ============================================================================ the async twin


async def test_the_async_client_sends_the_same_calls_and_maps_the_same_errors() -> None:
    recorder = Recorder(lambda request: httpx.Response(412, json=error_body("X", "no pools")))
    async with AsyncRestClient(URL, transport=httpx.MockTransport(recorder)) as client:
        with pytest.raises(PreconditionFailed):
            await client.create_volume(VOLUME, size=1 << 20, replicas=3)
    assert recorder.last.url.path == f"/v0/volumes/{VOLUME}"
    assert json.loads(recorder.last.content)["replicas"] == 3


async def test_the_async_client_lists_every_volume_page_by_page() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("starting_token") is None:
            return httpx.Response(200, json={"entries": [{"n": 1}], "next_token": 1})
        return httpx.Response(200, json={"entries": [{"n": 2}]})

    async with AsyncRestClient(URL, transport=httpx.MockTransport(answer)) as client:
        assert [v["n"] for v in await client.all_volumes(page_size=1)] == [1, 2]


async def test_the_async_client_is_unreachable_on_a_refused_connection(closed_port: int) -> None:
    async with AsyncRestClient(f"http://127.0.0.1:{closed_port}") as client:
        with pytest.raises(RestUnreachable):
            await client.get_nodes()
