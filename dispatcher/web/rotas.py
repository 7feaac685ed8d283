"""Rotas of safety tips over HTTP: preview, submit, approve, reject, pause, resume, retire and list — the
flow functions ``dispatch rota`` calls. A rota document is the body, as JSON or YAML; a rota is named by
its id or its name in the path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from dispatcher import rota, rotas
from dispatcher.errors import NotFoundError
from dispatcher.identity import User
from dispatcher.web import documents
from dispatcher.web.auth import READ, acting, ledger_of, settings_of
from dispatcher.web.items import LARGEST_ID, Reason

router = APIRouter(prefix="/rotas", tags=["rotas"])
Body = Annotated[bytes, Depends(documents.raw_body)]
RotaRef = Annotated[str, Path(min_length=1, max_length=200, description="The rota's id or name.")]


class Change(BaseModel):
    reason: str = Field("", max_length=2000, description="Why (recorded).")


def _ref(ref: str) -> str:
    """``ref``, unless it is an id no rota can have (past the ledger's integers)."""
    if ref.isdigit() and int(ref) > LARGEST_ID:
        raise NotFoundError(f"no rota {ref!r}")
    return ref


def _document(request: Request, body: bytes, author: str | None) -> rota.Rota:
    return rota.parse_rota(documents.decoded(body, documents.media_type(request)), "body", author=author)


@router.get("")
def listing(user: Annotated[User, Depends(acting(READ))], request: Request) -> list[dict[str, Any]]:
    """Every rota: state, live version and its approver, slots sent, late and skipped."""
    return rotas.listing(ledger_of(request))


@router.post("", status_code=201, openapi_extra=documents.described("Rota"))
def submit(
    user: Annotated[User, Depends(acting("rota.submit"))], body: Body, request: Request
) -> dict[str, Any]:
    """Submit a rota for review: a new version of the rota of its name; the caller is its author."""
    done = rotas.store(ledger_of(request), _document(request, body, user.name))
    return {"id": done.rota_id, "version": done.version, "digest": done.digest, "state": "submitted"}


@router.post("/preview", openapi_extra=documents.described("Rota"))
def preview(
    user: Annotated[User, Depends(acting(READ))],
    body: Body,
    request: Request,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="ISO date-time; without an offset, the office's time zone. Now."),
    ] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 7,
) -> list[dict[str, Any]]:
    """What a rota document would send, when and on which channels, quiet hours applied; sends nothing."""
    settings = settings_of(request)
    zone = ZoneInfo(settings.time_zone)
    data = documents.previewed(body, request, user.name)
    loaded = rota.parse_rota(data, "body")
    begin = datetime.now(zone) if start is None else start if start.tzinfo else start.replace(tzinfo=zone)
    if begin.year < 2 or begin.year > 9998:
        raise RequestValidationError(
            [{"loc": ("query", "from"), "msg": "out of range", "type": "value_error"}]
        )
    quiet = rota.quiet_hours_of(settings.quiet_hours)
    return [entry.to_json() for entry in rota.preview(loaded, begin, days, zone, quiet)]


@router.post("/{ref}/approve")
def approve(
    user: Annotated[User, Depends(acting("rota.review"))], ref: RotaRef, request: Request
) -> dict[str, Any]:
    """Approve a rota's submitted version: from now on it sends on its cadences (never its author)."""
    version = rotas.approve(ledger_of(request), _ref(ref), user.name)
    return {"rota": ref, "version": version.number, "digest": version.digest, "state": "approved"}


@router.post("/{ref}/reject")
def reject(
    user: Annotated[User, Depends(acting("rota.review"))], reason: Reason, ref: RotaRef, request: Request
) -> dict[str, Any]:
    """Reject a rota's submitted version (an approved one keeps running)."""
    rotas.reject(ledger_of(request), _ref(ref), user.name, reason.reason)
    return {"rota": ref, "state": "rejected"}


def _changing(what: str) -> None:
    def change(
        user: Annotated[User, Depends(acting("rota.run"))],
        ref: RotaRef,
        request: Request,
        why: Change | None = None,
    ) -> dict[str, Any]:
        state = rotas.change(
            ledger_of(request), settings_of(request), _ref(ref), what, user.name, why.reason if why else ""
        )
        return {"rota": ref, "state": state}

    change.__name__ = what
    router.add_api_route(
        f"/{{ref}}/{what}", change, methods=["POST"], summary=f"{what.capitalize()} a rota, on the record"
    )


for _what in ("pause", "resume", "retire"):
    _changing(_what)
