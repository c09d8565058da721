"""The served OpenAPI document: Litestar's, finished from the routes' declarations (`declare.Doc`).

Litestar writes what the handlers' types say (2xx bodies from return annotations, path
parameters, summaries, tags, `ResponseSpec`s).  `finish` adds, for every HTTP route of the app,
what the handlers do by hand: request bodies and query parameters (JSON Schema from their
msgspec Structs), who may call (by path unless declared), the error responses in the route's
error shape (Litestar's own 400 shape is never what a client gets here), the headers every
response carries, and, for the model surfaces, the SSE stream beside the JSON answer.

It runs once per process, on the first request for the document; nothing here is on the
request path of any other route.
"""

from __future__ import annotations

import copy
import inspect
import re
import typing
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from tollway.api.openapi.declare import DOC_KEY, Doc, ErrorStatus
from tollway.api.openapi.tables import (
    ADMIN_401,
    ERROR_HEADERS,
    ERRORS,
    HEADERS,
    PATH_PARAMS,
    REQUEST_HEADERS,
    SECURITY,
    SECURITY_SCHEMES,
)
from tollway.api.wire import AnthropicErrorResponse, ErrorResponse

__all__ = ["finish", "operations"]

# The order of an operation's fields in the served document, for whoever reads the JSON.
_ORDER = ("tags", "summary", "description", "operationId", "security", "parameters", "requestBody")

_REF = "#/components/schemas/{name}"


def operations(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler, HTTPRoute]]:
    """(path, method, handler, route) of every documented operation, as the document names them."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if handler.resolve_include_in_schema():
                yield route.path_format or "/", method.lower(), handler, route


def finish(app: Litestar, generated: Mapping[str, Any]) -> dict[str, Any]:
    """The document to serve, from Litestar's (`generated` is not changed)."""
    doc: dict[str, Any] = copy.deepcopy(dict(generated))
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    found = [(path, method, handler, _doc_of(handler)) for path, method, handler, _ in operations(app)]
    _describe(schemas, [handler for _, _, handler, _ in found])
    refs = _add_schemas(schemas, found)
    for path, method, handler, declared in found:
        operation = doc["paths"][path][method]
        _complete(operation, path, handler, declared, refs)
        ordered = {key: operation.pop(key) for key in _ORDER if key in operation}
        doc["paths"][path][method] = {**ordered, **operation}
    components["securitySchemes"] = {**SECURITY_SCHEMES, **components.get("securitySchemes", {})}
    components["headers"] = {**HEADERS, **components.get("headers", {})}
    return doc


def _doc_of(handler: HTTPRouteHandler) -> Doc:
    declared = handler.opt.get(DOC_KEY)
    return declared if isinstance(declared, Doc) else Doc()


def _describe(schemas: dict[str, Any], handlers: list[HTTPRouteHandler]) -> None:
    """Give Litestar's schemas of Structs their docstrings, as msgspec's have them."""
    stack: list[Any] = [handler.parsed_fn_signature.return_type.annotation for handler in handlers]
    stack += [spec.data_container for handler in handlers for spec in (handler.responses or {}).values()]
    seen: set[type] = set()
    while stack:
        kind = stack.pop()
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            if kind not in seen:
                seen.add(kind)
                stack += [field.type for field in msgspec.structs.fields(kind)]
        else:
            stack += typing.get_args(kind)
    docs: dict[str, str | None] = {}
    for struct in seen:
        doc = inspect.cleandoc(struct.__doc__) if struct.__doc__ else None
        docs[struct.__name__] = doc if docs.get(struct.__name__, doc) == doc else None  # ambiguous: none
    for schema in schemas.values():
        doc = docs.get(schema.get("title", ""))
        if doc:
            schema.setdefault("description", doc)


def _add_schemas(
    schemas: dict[str, Any], found: list[tuple[str, str, HTTPRouteHandler, Doc]]
) -> dict[type, dict[str, Any]]:
    """JSON Schema of every declared type, in `schemas`; returns each type's reference."""
    types: list[type] = [ErrorResponse, AnthropicErrorResponse]
    for _, _, _, declared in found:
        for kind in (declared.body, declared.ok, declared.events):
            if kind is not None and kind not in types:
                types.append(kind)
    refs, generated = msgspec.json.schema_components(types, ref_template=_REF)
    for name, schema in generated.items():
        if schema.get("type") == "object" and "properties" in schema:
            # A Struct that does not forbid unknown fields takes them (and the surfaces pass them on).
            schema.setdefault("additionalProperties", True)
        existing = schemas.get(name)
        if existing is not None and set(existing.get("properties", ())) != set(schema.get("properties", ())):
            raise ValueError(f"Two different schemas are named {name!r}: rename one of the Structs.")
        schemas.setdefault(name, schema)
    return dict(zip(types, refs, strict=True))


def _complete(
    operation: dict[str, Any],
    path: str,
    handler: HTTPRouteHandler,
    declared: Doc,
    refs: dict[type, dict[str, Any]],
) -> None:
    auth = declared.auth or (
        "admin" if path.startswith("/admin") else "api_key" if path.startswith("/v1") else "none"
    )
    if not handler.resolve_security():
        operation["security"] = SECURITY[auth]
    if not operation.get("tags"):
        operation["tags"] = ["admin" if auth.startswith("admin") else "client"]
    if not handler.summary:
        operation["summary"] = handler.handler_name.replace("_", " ").capitalize()
    operation["parameters"] = _parameters(operation.get("parameters") or [], declared)
    if not operation["parameters"]:
        del operation["parameters"]
    if declared.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[declared.body]}},
        }
    responses: dict[str, Any] = operation.setdefault("responses", {})
    status = handler.status_code
    _success(responses.setdefault(str(status), {}), status, declared, refs)
    errors: dict[ErrorStatus, str] = {}
    if auth != "none":
        errors[401] = ADMIN_401 if auth.startswith("admin") else ERRORS[401]
    if "parameters" in operation or declared.body is not None:
        errors[400] = ERRORS[400]
    if any(p.get("in") == "path" for p in operation.get("parameters", ())):
        errors[404] = ERRORS[404]
    if declared.body is not None:
        errors[413] = ERRORS[413]
    errors.update(declared.errors)
    schema = refs[AnthropicErrorResponse if declared.error_shape == "anthropic" else ErrorResponse]
    by_hand = {str(code) for code in handler.responses or ()}
    for code, description in sorted(errors.items(), key=lambda item: str(item[0])):
        if str(code) in by_hand:
            continue
        names = ERROR_HEADERS.get(code, ()) if isinstance(code, int) else ()
        responses[str(code)] = {
            "description": description,
            "headers": {name: _header_ref(name) for name in names},
            "content": {"application/json": {"schema": schema}},
        }
    for response in responses.values():
        response["headers"] = {"X-Request-Id": _header_ref("X-Request-Id"), **(response.get("headers") or {})}


def _parameters(generated: list[dict[str, Any]], declared: Doc) -> list[dict[str, Any]]:
    parameters = []
    for parameter in generated:
        if parameter.get("in") == "path" and parameter["name"] in PATH_PARAMS:
            parameter = {"description": PATH_PARAMS[parameter["name"]], **parameter}
        parameters.append(parameter)
    if declared.query is not None:
        parameters += _query_parameters(declared.query)
    for name in declared.request_headers:
        header = REQUEST_HEADERS[name]
        parameters.append({"name": name, "in": "header", "required": False, **header})
    return parameters


def _query_parameters(query: type) -> list[dict[str, Any]]:
    """One query parameter per field of the Struct `query` (scalars only: a query string is flat)."""
    schema = msgspec.json.schema(query)
    body = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    required = set(body.get("required", ()))
    parameters = []
    for name, field_schema in body["properties"].items():
        if any("$ref" in option for option in (field_schema, *field_schema.get("anyOf", ()))):
            raise ValueError(f"{query.__name__}.{name}: a query parameter must be a scalar.")
        field_schema = dict(field_schema)
        description = field_schema.pop("description", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description:
            parameter["description"] = description
        parameter["schema"] = field_schema
        parameters.append(parameter)
    return parameters


def _success(response: dict[str, Any], status: int, declared: Doc, refs: dict[type, dict[str, Any]]) -> None:
    if response.get("description") in (None, "", HTTPStatus(status).description):
        response["description"] = HTTPStatus(status).phrase  # not "Request fulfilled, document follows"
    content: dict[str, Any] = response.get("content") or {}
    if declared.ok is not None:
        content = {"application/json": {"schema": refs[declared.ok]}}
    if declared.events is not None:
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": declared.stream or "Server-sent events."},
            "x-itemSchema": refs[declared.events],
        }
    for media_type, entry in content.items():
        if not entry.get("schema") and re.match(r"text/", media_type):
            entry["schema"] = {"type": "string"}  # a text body is a string, whatever the handler's type
    if content:
        response["content"] = content
    headers = response.get("headers") or {}
    response["headers"] = {**headers, **{name: _header_ref(name) for name in declared.headers}}


def _header_ref(name: str) -> dict[str, str]:
    if name not in HEADERS:
        raise ValueError(f"Unknown response header {name!r}: add it to tollway.api.openapi.tables.HEADERS.")
    return {"$ref": f"#/components/headers/{name}"}
