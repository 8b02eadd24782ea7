"""Turn FastAPI's OpenAPI 3.1 document into a valid OpenAPI 3.0 one.

OGC API - Features Part 1 (conformance class OAS30) and the clients that read the API
definition (GDAL, QGIS, OWSLib) expect OpenAPI 3.0; FastAPI emits 3.1, whose schemas are JSON
Schema 2020-12. :func:`to_openapi30` rewrites the document: ``anyOf [X, {type: null}]`` and
``type: [X, "null"]`` become ``nullable``, ``const`` becomes a one-value ``enum``, schema
``examples`` become ``example``, numeric ``exclusiveMinimum``/``exclusiveMaximum`` become the
3.0 boolean form, ``$ref`` with siblings is wrapped in ``allOf`` and keywords 3.0 lacks are
dropped.
"""

from __future__ import annotations

import copy
from typing import Any

OPENAPI_VERSION = "3.0.3"

#: The HTTP methods a path item of OpenAPI 3.0 may hold an operation for.
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: Schema keywords of JSON Schema 2020-12 that OpenAPI 3.0 schema objects do not allow.
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "$dynamicRef",
        "$dynamicAnchor",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
        "dependentRequired",
        "dependentSchemas",
        "if",
        "then",
        "else",
        "patternProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contains",
        "minContains",
        "maxContains",
        "prefixItems",
        "const",
        "examples",
    }
)


def to_openapi30(document: dict[str, Any]) -> dict[str, Any]:
    """Return an OpenAPI 3.0 copy of an OpenAPI 3.1 document made by FastAPI.

    Parameters
    ----------
    document
        The OpenAPI 3.1 document (not modified).

    Returns
    -------
    dict
        The document with ``openapi`` set to ``3.0.3`` and every schema rewritten.

    """
    doc = copy.deepcopy(document)
    doc["openapi"] = OPENAPI_VERSION
    doc.pop("webhooks", None)
    doc.pop("jsonSchemaDialect", None)
    info = doc.get("info", {})
    info.pop("summary", None)
    if isinstance(info.get("license"), dict):
        info["license"].pop("identifier", None)
    for path_item in doc.get("paths", {}).values():
        _path_item(path_item)
    components = doc.get("components", {})
    components.pop("pathItems", None)
    for name, schema in list(components.get("schemas", {}).items()):
        components["schemas"][name] = convert_schema(schema)
    for parameter in components.get("parameters", {}).values():
        _parameter(parameter)
    for response in components.get("responses", {}).values():
        _response(response)
    for body in components.get("requestBodies", {}).values():
        _content(body.get("content"))
    for header in components.get("headers", {}).values():
        _parameter(header)
    return doc


def convert_schema(schema: Any) -> Any:
    """Return an OpenAPI 3.0 schema object for a JSON Schema 2020-12 one.

    Parameters
    ----------
    schema
        A schema object (a boolean schema is returned as is).

    Returns
    -------
    Any
        The converted schema.

    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        if key in ("properties",):
            out[key] = {k: convert_schema(v) for k, v in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = convert_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            if key != "allOf":
                kept = [v for v in value if not _is_null(v)]
                nullable = nullable or len(kept) < len(value)
                value = kept
            members = [convert_schema(v) for v in value]
            if key != "allOf" and len(members) == 1:
                out.update(_merge(out, members[0]))
            elif members:
                out[key] = members
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            nullable = nullable or len(types) < len(value)
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "type" and value == "null":
            nullable = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "prefixItems" and "items" not in schema:
            out["items"] = {"anyOf": [convert_schema(v) for v in value]} if value else {}
        elif key not in _DROPPED:
            out[key] = value
    if schema.get("type") == "array" and "items" not in out:
        out["items"] = {}  # 3.0 requires items on arrays
    if nullable:
        out["nullable"] = True
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def _is_null(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and schema.get("type") == "null"
        and len(schema) <= 2
        and (len(schema) == 1 or "title" in schema)
    )


def _merge(out: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
    """Merge the only non-null member of ``anyOf``/``oneOf`` into the enclosing schema."""
    if "$ref" in member or any(k in out and out[k] != v for k, v in member.items()):
        return {"allOf": [member]}
    return member


def _path_item(path_item: dict[str, Any]) -> None:
    for parameter in path_item.get("parameters", []):
        _parameter(parameter)
    for method in HTTP_METHODS:
        operation = path_item.get(method)
        if not isinstance(operation, dict):
            continue
        for parameter in operation.get("parameters", []):
            _parameter(parameter)
        if "requestBody" in operation:
            _content(operation["requestBody"].get("content"))
        for response in operation.get("responses", {}).values():
            _response(response)


def _parameter(parameter: dict[str, Any]) -> None:
    if "schema" in parameter:
        parameter["schema"] = convert_schema(parameter["schema"])
    _content(parameter.get("content"))


def _response(response: dict[str, Any]) -> None:
    _content(response.get("content"))
    for header in response.get("headers", {}).values():
        _parameter(header)


def _content(content: dict[str, Any] | None) -> None:
    for media in (content or {}).values():
        if "schema" in media:
            media["schema"] = convert_schema(media["schema"])
