"""Documents in request bodies: an item or a rota as JSON or YAML, a CAP alert as XML, a CSV of
subscribers.

An endpoint that takes one reads its raw body (:func:`raw_body`, after the token is checked: the
dependency comes after ``acting`` in its signature), decodes it by its ``Content-Type``
(:func:`decoded`) and validates it with the same function a file goes through on the command line
(``items.parse_item``, ``rota.parse_rota``), so a bad field is named the same way in both faces. Its
OpenAPI entry names the schema and the media types (:func:`described`).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from dispatcher.errors import InvalidItemError
from dispatcher.items import read_document

#: bytes a body may hold: an item is a few kilobytes; a subscriber list is imported in parts this size
MAX_BODY = 4 * 1024 * 1024
JSON = frozenset({"application/json"})
YAML = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
CAP = frozenset({"application/cap+xml", "application/xml", "text/xml"})
CSV = frozenset({"text/csv"})


async def raw_body(request: Request) -> bytes:
    """The request's body, refused with 413 past :data:`MAX_BODY` before it is all read."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"the body is larger than {MAX_BODY} bytes")
    return bytes(body)


def media_type(request: Request) -> str:
    """The body's media type, without its parameters (``; charset=utf-8``)."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def unsupported(media: str, accepted: frozenset[str]) -> HTTPException:
    """A 415 naming the media types the endpoint takes."""
    return HTTPException(415, f"Content-Type {media or '(none)'}: send one of {', '.join(sorted(accepted))}")


def decoded(body: bytes, media: str, source: str = "body") -> Any:
    """A JSON or YAML body decoded (not yet validated); no ``Content-Type`` is read as JSON."""
    if media not in JSON | YAML and media:
        raise unsupported(media, JSON | YAML)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidItemError(source, [("(document)", "is not UTF-8 text")]) from None
    if not text.strip():
        raise InvalidItemError(source, [("(document)", "is empty")])
    return read_document(text, source, as_json=media in JSON or not media, whole="(document)")


def described(schema: str, *, cap: bool = False) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of an endpoint that reads ``schema`` (an Item, a Rota) from its raw
    body, as JSON or YAML (and, with ``cap``, a CAP 1.2 alert)."""
    reference = {"$ref": f"#/components/schemas/{schema}"}
    content: dict[str, Any] = {
        "application/json": {"schema": reference},
        "application/yaml": {"schema": reference},
    }
    if cap:
        content["application/cap+xml"] = {
            "schema": {"type": "string", "description": "An OASIS CAP 1.2 alert: Alert, Update or Cancel."}
        }
    return {"requestBody": {"required": True, "content": content}}


def previewed(body: bytes, request: Request, reader: str) -> Any:
    """A document to preview, decoded: one that names no author is the reader's draft."""
    data = decoded(body, media_type(request))
    if isinstance(data, dict) and not data.get("author"):
        data = {**data, "author": reader}
    return data
