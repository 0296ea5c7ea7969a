"""``mayastor-operator-diskpool``: keeps DiskPool resources and the core agent's pools in step.

    mayastor-operator-diskpool --rest-endpoint http://CORE:8081 [--namespace mayastor]

Watches the DiskPools of one namespace through the Kubernetes API (in a pod: its service
account; elsewhere: ``$KUBECONFIG`` or ``~/.kube/config``) and reaches the control
plane through its REST API only. Runs until SIGTERM or SIGINT; exit status 0 after a
clean stop, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from typing import Any

import kopf

from mayastor.operator._reconciler import DiskPoolReconciler
from mayastor.operator._spec import API_GROUP, FINALIZER
from mayastor.operator.handlers import register
from mayastor.restclient import DEFAULT_TIMEOUT, AsyncRestClient

log = logging.getLogger("mayastor-operator-diskpool")

ANNOTATION_PREFIX = f"diskpool.{API_GROUP}"
"""Where kopf keeps a handler's retries and the spec it last handled (annotations)."""

COMPONENT = "mayastor-operator-diskpool"


def _seconds(text: str) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def _endpoint(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mayastor-operator-diskpool",
        description="The DiskPool operator of Mayastor: creates, follows and destroys the "
        "pools that DiskPool resources (openebs.io/v1beta2) ask for, through the core "
        "agent's REST API.",
    )
    parser.add_argument(
        "--rest-endpoint",
        required=True,
        metavar="URL",
        help="the core agent's REST API, e.g. http://mayastor-api-rest:8081",
    )
    parser.add_argument(
        "--rest-timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for each REST reply (default %(default)s)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=os.environ.get("POD_NAMESPACE") or "mayastor",
        metavar="NS",
        help="the namespace whose DiskPools are served (default $POD_NAMESPACE, else %(default)s)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="reach Kubernetes with this kubeconfig (default: the pod's service account, "
        "else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how often each DiskPool's pool is read to refresh its status and to retry "
        "what could not be done (default %(default)s)",
    )
    parser.add_argument(
        "--retry-delay",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long before a refused deletion is tried again (default %(default)s)",
    )
    parser.add_argument(
        "--health-endpoint",
        type=_endpoint,
        metavar="HOST:PORT",
        help="serve a liveness probe at http://HOST:PORT/healthz (default: none)",
    )
    parser.add_argument(
        "-l",
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default %(default)s)",
    )
    return parser


def operator_settings() -> kopf.OperatorSettings:
    """kopf's settings for this operator: its finalizer, annotations-only bookkeeping
    (the CRD's structural schema prunes anything kopf would put in the status), no
    peering and no scanning of CRDs or namespaces (neither needs cluster-wide rights)."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.posting.reporting_component = COMPONENT
    settings.posting.reporting_instance = socket.gethostname()
    settings.posting.event_name_prefix = "diskpool-"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


def build_registry(
    reconciler: DiskPoolReconciler,
    *,
    interval: float,
    retry_delay: float,
    kubeconfig: str | None = None,
) -> kopf.OperatorRegistry:
    """The handlers, and a login: `kubeconfig` when given, else the pod's service
    account, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if kubeconfig is not None:
            os.environ["KUBECONFIG"] = kubeconfig
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    register(registry, reconciler, interval=interval, retry_delay=retry_delay)
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        AsyncRestClient(args.rest_endpoint).base_url  # noqa: B018 - checks the URL early
    except ValueError as exc:
        parser.error(f"--rest-endpoint: {exc}")
    if args.kubeconfig is not None and not os.path.isfile(args.kubeconfig):
        parser.error(f"--kubeconfig: {args.kubeconfig}: no such file")
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if args.log_level != "debug":
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)

    async def run() -> None:
        async with AsyncRestClient(args.rest_endpoint, timeout=args.rest_timeout) as rest:
            reconciler = DiskPoolReconciler(rest, retry_delay=args.retry_delay)
            registry = build_registry(
                reconciler,
                interval=args.interval,
                retry_delay=args.retry_delay,
                kubeconfig=args.kubeconfig,
            )
            log.info(
                "serving DiskPools in namespace %s with the REST API at %s",
                args.namespace,
                args.rest_endpoint,
            )
            await kopf.operator(
                registry=registry,
                settings=operator_settings(),
                namespaces=[args.namespace],
                standalone=True,
                liveness_endpoint=(
                    f"http://{args.health_endpoint}/healthz" if args.health_endpoint else None
                ),
            )

    asyncio.run(run())
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
