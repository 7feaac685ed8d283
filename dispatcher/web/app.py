"""The HTTP application: the API under ``/api/v1``, the SMS callbacks, and the routers given beside them.

:func:`create_app` builds it from settings, a ledger and a broker (approvals and re-drives publish to it;
without one, deliveries wait in the ledger for the sweeper). :func:`build` is what ``dispatch serve``
runs: the same app with the broker the settings name and every face the release has.

The flow's errors become statuses here, and only here::

    AuthenticationError  401  (with WWW-Authenticate: Bearer)
    ForbiddenError       403
    NotFoundError        404
    RefusedError         409  (self-approval, approving twice, a delivery that is not dead)
    InvalidItemError     422  {"detail": [{"loc": ["body", field…], "msg": …}]}: FastAPI's own shape
    ContentError         422
    ConfigurationError   503  (the server's settings are wrong, not the request)
    other DispatchError  400
    anything else        500, logged, with no internals in the answer
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema

from dispatcher.errors import (
    AuthenticationError,
    ConfigurationError,
    ContentError,
    DispatchError,
    ForbiddenError,
    InvalidItemError,
    NotFoundError,
    RefusedError,
)
from dispatcher.items import Item
from dispatcher.ledger import Ledger
from dispatcher.outbox import Broker
from dispatcher.rota import Rota
from dispatcher.web import audit, callbacks, documents, items, operations, page, rotas, users
from dispatcher.web.auth import Gate
from settings import Settings

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
#: The documents an endpoint reads from its raw body (JSON, YAML, CAP), named in the OpenAPI document
#: though no endpoint's signature carries them.
DOCUMENTS: tuple[type[Any], ...] = (Item, Rota)
DESCRIPTION = """\
Everything the `dispatch` command line does, over HTTP: submit items (JSON, YAML or CAP 1.2), preview,
approve, reject, update, retract, status, re-drive deliveries, channels, rotas, users and the ledger's
export. Every endpoint under `/api/v1` needs `Authorization: Bearer <token>` (a token from
`dispatch users add`); the user's roles decide what it may do. A missing or wrong token gets 401, a role
that does not allow the action 403, a bad body 422 naming the field, a refusal of the rules 409.
"""


def _location(field: str) -> list[str | int]:
    return ["body", *(int(part) if part.isdigit() else part for part in field.split("."))]


def _errors(app: FastAPI) -> None:
    def answer(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(AuthenticationError)
    def _unauthenticated(_request: Request, exc: AuthenticationError) -> JSONResponse:
        return answer(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ForbiddenError)
    def _forbidden(_request: Request, exc: ForbiddenError) -> JSONResponse:
        return answer(403, str(exc))

    @app.exception_handler(NotFoundError)
    def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return answer(404, str(exc))

    @app.exception_handler(RefusedError)
    def _refused(_request: Request, exc: RefusedError) -> JSONResponse:
        return answer(409, str(exc))  # ForbiddenError, a RefusedError too, has its own handler (403)

    @app.exception_handler(InvalidItemError)
    def _invalid(_request: Request, exc: InvalidItemError) -> JSONResponse:
        return answer(
            422,
            [{"loc": _location(field), "msg": msg, "type": "value_error"} for field, msg in exc.problems],
        )

    @app.exception_handler(ContentError)
    def _content(_request: Request, exc: ContentError) -> JSONResponse:
        return answer(422, [{"loc": ["body"], "msg": str(exc), "type": "content_error"}])

    @app.exception_handler(ConfigurationError)
    def _configuration(_request: Request, exc: ConfigurationError) -> JSONResponse:
        log.error("a request met a configuration error: %s", exc)
        return answer(503, f"the server's configuration is wrong: {exc}")

    @app.exception_handler(DispatchError)
    def _dispatch(_request: Request, exc: DispatchError) -> JSONResponse:
        return answer(400, str(exc))

    @app.exception_handler(Exception)
    def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return answer(500, "the request could not be processed; the server's log says why")


def _documented(app: FastAPI) -> None:
    """An OpenAPI document that also holds the schemas of the documents read from raw bodies."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _, defined = models_json_schema(
                [(model, "validation") for model in DOCUMENTS], ref_template="#/components/schemas/{model}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defined.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings,
    ledger: Ledger,
    broker: Broker | None = None,
    *,
    extra_routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """The API, the callbacks and ``extra_routers`` (the status page) on one FastAPI app."""
    app = FastAPI(
        title="Publication dispatcher",
        version="1",
        description=DESCRIPTION,
        max_body_size=documents.MAX_BODY,  # 413 for a longer body, declared or streamed, before it is read
        # FastAPI's viewers load their scripts from a CDN: on an office's closed network they are blank.
        # The document itself is served; any OpenAPI viewer opens it.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings, app.state.ledger, app.state.broker = settings, ledger, broker
    _errors(app)
    app.add_middleware(Gate, ledger=ledger)
    app.include_router(callbacks.router(settings, ledger))
    app.include_router(operations.scraping)
    for family in (
        items.router,
        items.previewing,
        operations.router,
        rotas.router,
        users.router,
        audit.router,
    ):
        app.include_router(family, prefix=PREFIX)
    for extra in extra_routers:
        app.include_router(extra)
    _documented(app)
    return app


def build(
    settings: Settings, ledger: Ledger, broker: Broker | None, *, probe_interval: float | None = None
) -> FastAPI:
    """The app ``dispatch serve`` runs: every face of this release. It probes the channels every
    ``probe_interval`` seconds while it runs (default: the monitor's setting; 0: never)."""
    page_routes = page.router(settings, ledger, probe_interval=probe_interval)
    return create_app(settings, ledger, broker, extra_routers=[page_routes])
