"""An emulated Kubernetes API server for tests: kmock's KubernetesEmulator on 127.0.0.1,
run in a thread of its own, with synchronous helpers to act as ``kubectl`` would.

kmock keeps objects in memory and serves discovery, list, watch, create, patch and
delete (finalizers and ``deletionTimestamp`` included). `ApiServerEmulator` adds what a
real API server does and kmock leaves to it, so that a client such as kopf meets the
same answers it would in a cluster:

- ``metadata.generateName`` makes a name (kopf posts Events that way), and new objects
  get a ``uid``, a ``creationTimestamp`` and a ``generation``;
- every write bumps ``metadata.resourceVersion``, and a JSON patch whose ``test`` fails
  is refused with 422 (kopf's optimistic concurrency on finalizers relies on it);
- objects of a registered CustomResourceDefinition are checked against its schema on
  create and update (422 ``Invalid`` with the reasons, like strict field validation; an
  update is refused only for errors the object did not have before, as API servers
  ratchet validation).

Every request is recorded, so a test can list which verbs on which resources a client
used (and compare that with the RBAC the Helm chart grants it).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import secrets
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import httpx
import jsonpatch
import jsonpointer
import kmock
import yaml

from tests.support.crd_schema import CustomResourceSchema


@dataclass(frozen=True)
class ApiCall:
    """One request a client made, in RBAC's terms."""

    verb: str  # get, list, watch, create, update, patch, delete
    group: str  # "" for the core API
    resource: str  # plural, with "/status" for the subresource
    namespace: str | None


_VERBS = {
    kmock.action.LIST: "list",
    kmock.action.WATCH: "watch",
    kmock.action.FETCH: "get",
    kmock.action.CREATE: "create",
    kmock.action.DELETE: "delete",
}


_ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")

_BUILTIN_RESOURCES = (
    ("v1/namespaces", "Namespace", False),
    ("v1/events", "Event", True),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False),
)


def _merge_diff(old: Any, new: Any) -> Any:
    """A JSON merge patch (RFC 7386) that turns `old` into `new`."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    diff: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        diff[key] = None
    for key, value in new.items():
        if key not in old:
            diff[key] = value
        elif old[key] != value:
            diff[key] = _merge_diff(old[key], value)
    return diff


def _merge(old: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(old) if isinstance(old, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _with_data(request: kmock.Request, data: Any) -> kmock.Request:
    """The same request with another body, as an API server's admission would rewrite it.

    kmock finds a request's reactions by identity among those it recorded, so the
    (frozen) request is changed in place rather than copied.
    """
    object.__setattr__(request, "data", data)
    return request


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with names, versions and CRD schemas enforced (see the module)."""

    schemas: dict[tuple[str, str, str], CustomResourceSchema] = attrs.field(factory=dict)
    check_schemas: bool = True
    _revision: int = attrs.field(default=1000, init=False)

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _schema(self, request: kmock.Request) -> CustomResourceSchema | None:
        res = request.resource
        if res is None:
            return None
        return self.schemas.get((str(res.group), str(res.version), str(res.plural)))

    def _refuse_if_invalid(
        self,
        request: kmock.Request,
        obj: Mapping[str, Any],
        old: Mapping[str, Any] | None = None,
    ) -> None:
        """422 when `obj` breaks its CRD's schema; on an update, only for errors `old` did
        not have already (validation ratcheting, as API servers since 1.30 do)."""
        schema = self._schema(request)
        if schema is None or not self.check_schemas:
            return
        errors = schema.errors(obj)
        if old is not None:
            known = set(schema.errors(old))
            errors = [e for e in errors if e not in known]
        if errors:
            name = obj.get("metadata", {}).get("name")
            raise kmock.KubernetesError(
                status=422,
                reason="Invalid",
                message=f"{schema.kind}.{schema.group} {name!r} is invalid: " + "; ".join(errors),
                details={"causes": [{"message": e} for e in errors]},
            )

    async def _serve_list(self, request: kmock.Request) -> Any:
        """kmock's list with the ``kind`` and ``apiVersion`` an API server gives it
        (kubectl refuses a list without them)."""
        listed = await super()._serve_list(request)
        res = request.resource
        info = self.resources.get(res) if res is not None else None
        if (
            isinstance(listed, dict)
            and res is not None
            and isinstance(info, kmock.ResourceInfo)
            and info.kind
        ):
            version = f"{res.group}/{res.version}" if res.group else str(res.version)
            listed = {"apiVersion": version, "kind": f"{info.kind}List", **listed}
        return listed

    async def _serve_version(self, request: kmock.Request) -> Any:
        """kmock's resource list of a group version, with short names on the resources
        only (not on their subresources, as kubectl would find two matches)."""
        served = await super()._serve_version(request)
        for entry in served.get("resources", []) if isinstance(served, dict) else []:
            if "/" in entry["name"]:
                entry["shortNames"] = []
        return served

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.action == kmock.action.CREATE:
            request = self._admit_create(request)
        elif request.resource is not None and request.action == kmock.action.UPDATE:
            request = self._admit_update(request)
        return await super()._handle(request)

    def _admit_create(self, request: kmock.Request) -> kmock.Request:
        data = copy.deepcopy(request.data) if isinstance(request.data, dict) else {}
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        if not meta.get("name"):
            raise kmock.KubernetesError(
                status=422, reason="Invalid", message="metadata.name: Required value"
            )
        if request.namespace:
            meta.setdefault("namespace", request.namespace)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = (
            datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        )
        meta["resourceVersion"] = self._next_revision()
        meta["generation"] = 1
        self._refuse_if_invalid(request, data)
        return _with_data(request, data)

    def _admit_update(self, request: kmock.Request) -> kmock.Request:
        if request.resource is None or request.name is None:
            return request
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return request  # kmock answers 404
        current = copy.deepcopy(dict(self.objects[key].raw))
        if isinstance(request.data, list):
            try:
                new = jsonpatch.apply_patch(current, request.data, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise kmock.KubernetesError(
                    status=422, reason="Invalid", message=f"the JSON patch fails: {exc}"
                ) from exc
        elif request.method == kmock.method.PUT:
            new = copy.deepcopy(request.data)
        else:
            new = _merge(current, request.data)
        meta = new.setdefault("metadata", {})
        meta["resourceVersion"] = self._next_revision()
        if new.get("spec") != current.get("spec"):
            meta["generation"] = int(current.get("metadata", {}).get("generation", 1)) + 1
        self._refuse_if_invalid(request, new, current)
        return _with_data(request, _merge_diff(current, new))


class KubeApi:
    """An `ApiServerEmulator` served on 127.0.0.1 from a thread, and a kubeconfig for it.

    Args:
        workdir: where the kubeconfig is written.
        crds: CustomResourceDefinitions to serve (and to check objects against).
        namespace: the kubeconfig's default namespace.
    """

    def __init__(
        self, workdir: Path, crds: Sequence[Mapping[str, Any]] = (), namespace: str = "mayastor"
    ) -> None:
        self.workdir = Path(workdir)
        self.namespace = namespace
        self.schemas = [CustomResourceSchema(crd) for crd in crds]
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        self._handler: ApiServerEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.http: httpx.Client | None = None

    # ---------------------------------------------------------------- life

    def start(self) -> KubeApi:
        self._thread = threading.Thread(target=self._run, name="kube-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the emulated API server did not start: {self._error!r}")
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "kmock", "user": {"token": "test"}}],
                    "contexts": [
                        {
                            "name": "kmock",
                            "context": {
                                "cluster": "kmock",
                                "user": "kmock",
                                "namespace": self.namespace,
                            },
                        }
                    ],
                    "current-context": "kmock",
                }
            )
        )
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        schemas = {(s.group, s.version, s.plural): s for s in self.schemas}
        async with ApiServerEmulator(schemas=schemas) as handler, kmock.Server(handler) as server:
            for schema in self.schemas:
                handler.resources[f"{schema.group}/{schema.version}/{schema.plural}"] = (
                    kmock.ResourceInfo(
                        kind=schema.kind,
                        singular=schema.singular,
                        shortnames=schema.short_names,
                        namespaced=True,
                        subresources={"status"},
                        verbs=set(_ALL_VERBS),
                    )
                )
            # What discovery lists in any cluster (no objects are kept for them here):
            # clients such as kopf look these up before they serve anything.
            for key, kind, namespaced in _BUILTIN_RESOURCES:
                handler.resources[key] = kmock.ResourceInfo(
                    kind=kind, namespaced=namespaced, verbs=set(_ALL_VERBS)
                )
            self._handler = handler
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> KubeApi:
        return self.start()

    @contextlib.contextmanager
    def unchecked(self) -> Iterator[None]:
        """Objects created or changed inside are not checked against their CRD's schema, as
        by an API server with an older or looser CRD."""
        assert self._handler is not None
        self._handler.check_schemas = False
        try:
            yield
        finally:
            self._handler.check_schemas = True

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- as kubectl

    def _path(self, api_version: str, plural: str, name: str | None = None) -> str:
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        path = f"{prefix}/namespaces/{self.namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def _client(self) -> httpx.Client:
        assert self.http is not None, "start() first"
        return self.http

    def create(self, obj: Mapping[str, Any], plural: str) -> httpx.Response:
        """POST `obj` as ``kubectl create`` does; the reply (201, or 422 with the reasons)."""
        return self._client().post(self._path(obj["apiVersion"], plural), json=dict(obj))

    def get(self, api_version: str, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        reply = self._client().get(self._path(api_version, plural, name))
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        return dict(reply.json())

    def patch(
        self, api_version: str, plural: str, name: str, merge_patch: Mapping[str, Any]
    ) -> httpx.Response:
        return self._client().patch(
            self._path(api_version, plural, name),
            json=dict(merge_patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def delete(self, api_version: str, plural: str, name: str) -> httpx.Response:
        """DELETE as ``kubectl delete --wait=false`` does."""
        return self._client().delete(self._path(api_version, plural, name))

    def events(self, involving: str | None = None) -> list[dict[str, Any]]:
        """The Events of the namespace (only those about the object `involving`)."""
        reply = self._client().get(self._path("v1", "events"))
        reply.raise_for_status()
        items = reply.json().get("items", [])
        return [
            e for e in items if involving is None or e["involvedObject"].get("name") == involving
        ]

    def calls(self, user_agent: str | None = None) -> set[ApiCall]:
        """Every request made so far (by clients whose User-Agent starts with `user_agent`),
        as RBAC verbs on resources."""
        assert self._handler is not None
        found: set[ApiCall] = set()
        for request in list(self._handler._requests):
            if request.resource is None or request.action is None:
                continue
            if request.resource.plural is None:
                continue  # discovery: non-resource URLs every client may read
            agent = request.headers.get("User-Agent", "")
            if user_agent is not None and not agent.startswith(user_agent):
                continue
            if request.action == kmock.action.UPDATE:
                verb = "patch" if request.method == kmock.method.PATCH else "update"
            else:
                verb = _VERBS[request.action]
            resource = str(request.resource.plural)
            if request.subresource:
                resource += f"/{request.subresource}"
            found.add(ApiCall(verb, str(request.resource.group or ""), resource, request.namespace))
        return found
