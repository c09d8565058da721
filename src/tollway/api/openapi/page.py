"""The docs page at `GET /schema`: the OpenAPI document as one self-contained HTML page.

Rendered on the server from the document, once: every operation (method, path, summary, who
may call, parameters, request body fields, responses with their headers), then every schema.
Inline CSS, no script, nothing fetched from anywhere (its Content-Security-Policy says so).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

import msgspec

__all__ = ["render"]

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --link: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.5;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { display: grid; grid-template-columns: 19rem minmax(0, 1fr); min-height: 100vh; }
nav { position: sticky; top: 0; height: 100vh; overflow-y: auto; padding: 1rem;
  border-right: 1px solid var(--line); background: var(--soft); font-size: 13px; }
nav h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 1.2rem 0 .3rem; }
nav ul { list-style: none; margin: 0; padding: 0; }
nav li { margin: .15rem 0; }
nav a { color: var(--fg); text-decoration: none; display: flex; gap: .4rem; align-items: baseline; }
nav a:hover code { text-decoration: underline; }
main { padding: 1.5rem 2.5rem 4rem; max-width: 72rem; }
h1 { margin: 0 0 .2rem; font-size: 28px; }
h2.tag { margin: 2.5rem 0 .3rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { margin: 0; font-size: 18px; display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
h4 { margin: 1rem 0 .3rem; font-size: 14px; }
a { color: var(--link); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
  padding: .05rem .3rem; border-radius: 4px; }
h3 code { font-size: 16px; background: none; padding: 0; }
.muted { color: var(--muted); }
.op, .schema { border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem; margin: 1rem 0; }
.op > p, .schema > p { margin: .4rem 0; }
.method { font: 700 11px ui-monospace, monospace; color: #fff; border-radius: 4px; padding: .15rem .45rem;
  min-width: 3.6rem; text-align: center; display: inline-block; }
.get { background: #1a7f37; } .post { background: #0969da; } .patch { background: #9a6700; }
.delete { background: #cf222e; } .put { background: #8250df; }
.auth { font-size: 13px; background: #fff8c5; border: 1px solid #eac54f; border-radius: 4px;
  padding: .05rem .4rem; }
.auth.none { background: var(--soft); border-color: var(--line); }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: .3rem 0; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); padding: .35rem .5rem; }
th { background: var(--soft); font-weight: 600; }
td p { margin: 0 0 .2rem; }
td.name { white-space: nowrap; }
.req { color: #cf222e; font-size: 11px; }
.status { font-weight: 700; white-space: nowrap; }
.s2 { color: #1a7f37; } .s4, .s5, .sd { color: #cf222e; }
@media (max-width: 900px) { .wrap { display: block; } nav { position: static; height: auto; } }
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_AUTH = {
    "apiKey": "API key (Bearer tw-…)",
    "xApiKey": "x-api-key: tw-…",
    "adminToken": "admin token (Bearer)",
}
_CODE = re.compile(r"`([^`]+)`")


def render(doc: Mapping[str, Any]) -> str:
    info = doc.get("info", {})
    components = doc.get("components", {})
    schemas: Mapping[str, Any] = components.get("schemas", {})
    groups = _by_tag(doc)
    tags = {t["name"]: t.get("description", "") for t in doc.get("tags", ())}
    sections = "".join(
        f'<section id="tag-{escape(tag)}"><h2 class="tag">{escape(tag)}</h2>{_prose(tags.get(tag, ""))}'
        + "".join(_operation(path, method, op, schemas) for path, method, op in ops)
        + "</section>"
        for tag, ops in groups.items()
    )
    title = escape(str(info.get("title", "API")))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f'<title>{title} API</title><style>{_CSS}</style></head><body><div class="wrap">'
        f'<nav><strong>{title}</strong> <span class="muted">{escape(str(info.get("version", "")))}</span>'
        f"{_nav(groups, schemas)}</nav><main><h1>{title} API</h1>"
        f'<p class="muted">OpenAPI {escape(str(doc.get("openapi", "")))} · '
        '<a href="/schema/openapi.json">/schema/openapi.json</a></p>'
        f"{_prose(str(info.get('description', '')))}{_authentication(components)}{sections}"
        f"{_headers(components)}"
        f'<section id="schemas"><h2 class="tag">Schemas</h2>'
        f"{''.join(_schema_block(name, schema, schemas) for name, schema in schemas.items())}</section>"
        "</main></div></body></html>\n"
    )


def _nav(groups: Mapping[str, list[tuple[str, str, Mapping[str, Any]]]], schemas: Mapping[str, Any]) -> str:
    links = "".join(
        f"<h2>{escape(tag)}</h2><ul>"
        + "".join(
            f'<li><a href="#{_op_id(op)}"><span class="method {method}">{method.upper()}</span>'
            f"<code>{escape(path)}</code></a></li>"
            for path, method, op in ops
        )
        + "</ul>"
        for tag, ops in groups.items()
    )
    names = "".join(f'<li><a href="#schema-{escape(n)}"><code>{escape(n)}</code></a></li>' for n in schemas)
    reference = '<h2>Reference</h2><ul><li><a href="#headers">Headers</a></li></ul>'
    return f"{links}{reference}<h2>Schemas</h2><ul>{names}</ul>"


def _authentication(components: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr><td class="name">{escape(_AUTH.get(name, name))}</td>'
        f"<td>{_prose(scheme.get('description', ''))}</td></tr>"
        for name, scheme in components.get("securitySchemes", {}).items()
    )
    return f'<h2 class="tag">Authentication</h2><table>{rows}</table>' if rows else ""


def _headers(components: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr id="header-{escape(name)}"><td class="name"><code>{escape(name)}</code></td>'
        f"<td>{_type(header.get('schema', {}))}</td><td>{_prose(header.get('description', ''))}</td></tr>"
        for name, header in components.get("headers", {}).items()
    )
    return (
        '<section id="headers"><h2 class="tag">Headers</h2><table><tr><th>Header</th><th>Type</th>'
        f"<th>Description</th></tr>{rows}</table></section>"
    )


def _by_tag(doc: Mapping[str, Any]) -> dict[str, list[tuple[str, str, Mapping[str, Any]]]]:
    order = [t["name"] for t in doc.get("tags", ())]
    groups: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {name: [] for name in order}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if isinstance(op, Mapping) and "responses" in op:
                tag = (op.get("tags") or ["other"])[0]
                groups.setdefault(tag, []).append((path, method, op))
    return {tag: ops for tag, ops in groups.items() if ops}


def _op_id(op: Mapping[str, Any]) -> str:
    return "op-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(op.get("operationId", "")))


def _operation(path: str, method: str, op: Mapping[str, Any], schemas: Mapping[str, Any]) -> str:
    parts = [
        f'<article class="op" id="{_op_id(op)}"><h3><span class="method {method}">{method.upper()}</span>'
        f"<code>{escape(path)}</code>{_auth(op.get('security'))}</h3>"
        f"<p><strong>{escape(str(op.get('summary', '')))}</strong></p>",
        _prose(str(op.get("description") or "")),
    ]
    parameters = op.get("parameters") or []
    if parameters:
        rows = "".join(
            f'<tr><td class="name"><code>{escape(p["name"])}</code>{_required(p.get("required"))}</td>'
            f"<td>{escape(p.get('in', ''))}</td><td>{_type(p.get('schema', {}))}</td>"
            f"<td>{_prose(p.get('description', ''))}{_notes(p.get('schema', {}))}</td></tr>"
            for p in parameters
        )
        parts.append(
            "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr>"
            f"{rows}</table>"
        )
    body = op.get("requestBody")
    if body:
        for media_type, entry in body.get("content", {}).items():
            schema = entry.get("schema", {})
            parts.append(
                f'<h4>Request body <span class="muted">{escape(media_type)}</span> · {_type(schema)}</h4>'
                f"{_fields(schema, schemas)}"
            )
    parts.append(_responses(op.get("responses", {}), schemas))
    parts.append("</article>")
    return "".join(parts)


def _auth(security: Iterable[Mapping[str, Any]] | None) -> str:
    options = [
        " + ".join(_AUTH.get(name, name) for name in requirement) or "none" for requirement in security or ()
    ]
    if not options:
        return '<span class="auth none">no auth</span>'
    return f'<span class="auth">{escape(" or ".join(options))}</span>'


def _responses(responses: Mapping[str, Any], schemas: Mapping[str, Any]) -> str:
    rows = []
    detail = ""
    for status, response in responses.items():
        bodies = []
        for media_type, entry in (response.get("content") or {}).items():
            schema = entry.get("schema", {})
            item = entry.get("x-itemSchema")
            events = f" — each event: {_type(item)}{_prose(schema.get('description', ''))}" if item else ""
            bodies.append(f'<span class="muted">{escape(media_type)}</span> {_type(schema)}{events}')
            if status.startswith("2") and not detail and media_type.endswith("json"):
                detail = _fields(schema, schemas)
        headers = ", ".join(
            f'<a href="#header-{escape(name)}"><code>{escape(name)}</code></a>'
            for name in response.get("headers") or {}
        )
        rows.append(
            f'<tr><td class="status s{status[:1]}">{escape(status)}</td>'
            f"<td>{_prose(str(response.get('description', '')))}</td>"
            f"<td>{'<br>'.join(bodies) or '—'}</td><td>{headers}</td></tr>"
        )
    table = (
        "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th><th>Headers</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return table + (f"<h4>Response fields</h4>{detail}" if detail else "")


def _resolve(schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        found: Mapping[str, Any] = schemas.get(ref.rsplit("/", 1)[-1], {})
        return found
    return schema


def _fields(schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> str:
    resolved = _resolve(schema, schemas)
    properties: Mapping[str, Any] = resolved.get("properties") or {}
    if not properties:
        return ""
    required = set(resolved.get("required", ()))
    rows = "".join(
        f'<tr><td class="name"><code>{escape(name)}</code>{_required(name in required)}</td>'
        f"<td>{_type(prop)}</td><td>{_prose(_description(prop))}{_notes(prop)}</td></tr>"
        for name, prop in properties.items()
    )
    more = resolved.get("additionalProperties")
    extra = '<p class="muted">Other fields are allowed (and passed on).</p>' if more is True else ""
    return f"<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>{rows}</table>{extra}"


def _schema_block(name: str, schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> str:
    fields = _fields(schema, schemas)
    body = fields or f"<p>{_type(schema)}</p>"
    return (
        f'<article class="schema" id="schema-{escape(name)}"><h3><code>{escape(name)}</code></h3>'
        f"{_prose(str(schema.get('description', '')))}{body}</article>"
    )


def _type(schema: Mapping[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return " | ".join(_literal(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return (" &amp; " if key == "allOf" else " | ").join(_type(s) for s in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(escape(str(k)) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object":
        values = schema.get("additionalProperties")
        return f"object of {_type(values)}" if isinstance(values, Mapping) and values else "object"
    return escape(str(kind)) if kind else "any"


def _description(schema: Mapping[str, Any]) -> str:
    """The field's description, or that of the one alternative that has one (`X | null`)."""
    if schema.get("description"):
        return str(schema["description"])
    described = [
        s["description"] for s in schema.get("anyOf", schema.get("oneOf", ())) if s.get("description")
    ]
    return str(described[0]) if len(described) == 1 else ""


def _notes(schema: Mapping[str, Any]) -> str:
    alternatives = [s for s in schema.get("anyOf", schema.get("oneOf", ())) if s.get("type") != "null"]
    if len(alternatives) == 1:  # `X | null`: X's bounds are the field's
        schema = {**alternatives[0], **schema}
    notes = []
    for key, label in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("exclusiveMinimum", ">"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("pattern", "pattern"),
    ):
        if key in schema:
            notes.append(f"{label} {escape(str(schema[key]))}")
    if schema.get("default") is not None:
        notes.append(f"default {_literal(schema['default'])}")
    examples = schema.get("examples")
    if examples:
        notes.append("e.g. " + ", ".join(_literal(e) for e in examples))
    return f' <span class="muted">{"; ".join(notes)}</span>' if notes else ""


def _literal(value: Any) -> str:
    return f"<code>{escape(msgspec.json.encode(value).decode())}</code>"


def _required(required: Any) -> str:
    return ' <span class="req">required</span>' if required else ""


def _prose(text: str) -> str:
    """Plain text with `code` spans; blank lines separate paragraphs."""
    if not text:
        return ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join("<p>" + _CODE.sub(r"<code>\1</code>", escape(p)) + "</p>" for p in paragraphs)
