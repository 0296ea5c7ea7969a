"""A property-based run of the REST API's own OpenAPI document against a live core agent.

Schemathesis reads the document (the one the core agent serves at `/v0/api/spec`),
generates requests for every operation (valid ones and ones that break the schema)
and checks each answer from a live agent with three io-engines and their pools: never
a server error, a documented status code, a body that matches the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from mayastor.control.rest import create_app
from tests.support.cluster import TestCluster

pytestmark = pytest.mark.slow

DOCUMENT = create_app(cast(Any, None)).openapi()
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "404", "409", "412"],
            }
        }
    }
)
"""A well-formed request may still be refused for what the cluster is: 404 (no such
object), 409 (a conflict), 412 (not enough nodes, pools or space)."""
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def live_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    cluster = TestCluster(Path(tmp_path_factory.mktemp("schema")), disk_size=128 << 20)
    cluster.start()
    yield cluster
    cluster.close()


def test_the_agent_serves_the_document_the_tests_read(live_cluster: TestCluster) -> None:
    assert live_cluster.rest.client.get("/api/spec").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_answers_within_its_document(
    case: schemathesis.Case[Any], live_cluster: TestCluster
) -> None:
    case.call_and_validate(base_url=live_cluster.core.rest_url)
