"""The REST call the CSI controller adds: a volume created in an affinity group."""

from __future__ import annotations

import json

import httpx

from mayastor.restclient import RestClient


def test_create_volume_sends_its_affinity_group() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    with RestClient("http://core:8081", transport=httpx.MockTransport(answer)) as client:
        client.create_volume("v1", size=512, replicas=1, affinity_group="shop/data-web")
        client.create_volume("v2", size=512, replicas=1)
    assert json.loads(sent[0].content)["affinity_group"] == {"id": "shop/data-web"}
    assert "affinity_group" not in json.loads(sent[1].content)
