"""What a Kubernetes API server checks of a CustomResourceDefinition and its objects.

`structural_problems` lists where a CRD's ``openAPIV3Schema`` is not *structural* (the
API server refuses such a CRD in apiextensions.k8s.io/v1): every node states its type,
``properties`` and ``additionalProperties`` are not mixed, the root is an object.

`CustomResourceSchema` checks an object of that kind as the API server does on create
and update with strict field validation (kubectl's default): the schema's types, enums,
bounds, patterns and required fields (``jsonschema``, which reads the OpenAPI v3 subset
a CRD may use), and no field the schema does not know. ``metadata`` is the server's own
and is not checked here. CEL rules (``x-kubernetes-validations``) are not evaluated: the
chart's CRD has none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

_UNTYPED_OK = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def structural_problems(schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Where `schema` breaks the rules of a structural schema (empty when it keeps them)."""
    problems: list[str] = []
    here = path or "<root>"
    if not path and schema.get("type") != "object":
        problems.append("<root>: the root must be of type object")
    if "type" not in schema and not any(schema.get(k) for k in _UNTYPED_OK):
        problems.append(f"{here}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{here}: properties and additionalProperties together")
    for name, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), Mapping):
        problems += structural_problems(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), Mapping):
        problems += structural_problems(schema["items"], f"{path}[]")
    return problems


def _unknown_fields(value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                if where != "metadata":
                    yield from _unknown_fields(item, properties[key], where)
            elif isinstance(extra, Mapping):
                yield from _unknown_fields(item, extra, where)
            elif properties is not None or extra is False:
                yield f'unknown field "{where}"'
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


class CustomResourceSchema:
    """The schema of one version of a CRD, to check objects against.

    Args:
        crd: the CustomResourceDefinition (as loaded from YAML).
        version: which of its versions; the storage version when None.
    """

    def __init__(self, crd: Mapping[str, Any], version: str | None = None) -> None:
        versions = crd["spec"]["versions"]
        chosen = next(
            v for v in versions if (v["name"] == version if version else v.get("storage"))
        )
        self.group = crd["spec"]["group"]
        self.version = chosen["name"]
        self.kind = crd["spec"]["names"]["kind"]
        self.plural = crd["spec"]["names"]["plural"]
        self.singular = crd["spec"]["names"].get("singular", self.kind.lower())
        self.short_names = list(crd["spec"]["names"].get("shortNames", []))
        self.schema = chosen["schema"]["openAPIV3Schema"]
        self._validator = jsonschema.Draft7Validator(self.schema)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        """Why the API server would refuse `obj` (empty when it would take it)."""
        found: list[str] = []
        if obj.get("apiVersion") != self.api_version:
            found.append(f"apiVersion: {obj.get('apiVersion')!r} is not {self.api_version}")
        if obj.get("kind") != self.kind:
            found.append(f"kind: {obj.get('kind')!r} is not {self.kind}")
        body = {k: v for k, v in obj.items() if k != "metadata"}
        for error in sorted(self._validator.iter_errors(body), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.absolute_path) or "<root>"
            found.append(f"{where}: {error.message}")
        found += _unknown_fields(body, self.schema, "")
        return found
