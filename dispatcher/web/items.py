"""Items over HTTP: submit (JSON, YAML or CAP), submit a draft, update, approve, reject, retract, status,
preview and the CAP export — each the flow function its ``dispatch`` command calls.

The author on the record is the user who submits (a document may leave ``author`` out and may not name
someone else); approving, rejecting and retracting act as the calling user, so the four-eyes rule holds
over HTTP as on the command line.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from channels import REGISTRY, unknown
from dispatcher import alerts, approval, previews, reports, withdrawals
from dispatcher.identity import User
from dispatcher.items import Item, parse_item
from dispatcher.web import documents
from dispatcher.web.auth import READ, acting, broker_of, ledger_of, settings_of

router = APIRouter(prefix="/items", tags=["items"])
#: the largest id the ledger stores (a signed 64-bit integer): a larger one is a 422, not an overflow
LARGEST_ID = 2**63 - 1
ItemId = Annotated[int, Path(ge=1, le=LARGEST_ID, description="The item's id.")]
Body = Annotated[bytes, Depends(documents.raw_body)]


class Reason(BaseModel):
    """Why: kept in the ledger (and, for a withdrawal, said in the SMS notice)."""

    reason: str = Field(min_length=1, max_length=2000)


class Stored(BaseModel):
    id: int
    state: str
    revision: int | None = None


def check_channel(name: str | None, where: tuple[str, str]) -> None:
    """A channel named in a request is a registered one: a 422 at ``where`` with the nearest name, not
    the ConfigurationError an unknown name in the settings is."""
    if name is not None and name not in REGISTRY:
        raise RequestValidationError([{"loc": where, "msg": unknown(name), "type": "value_error"}])


def document(request: Request, body: bytes, user: User) -> Item:
    """The item a JSON or YAML body holds, whose author is ``user``."""
    data = documents.decoded(body, documents.media_type(request))
    return parse_item(data, "body", author=user.name)


@router.post("", status_code=201, openapi_extra=documents.described("Item", cap=True))
def submit(
    user: Annotated[User, Depends(acting("submit"))],
    body: Body,
    request: Request,
    draft: Annotated[bool, Query(description="Store it as a draft, not yet for review.")] = False,
) -> dict[str, Any]:
    """Store an item for review (``dispatch submit FILE``): 201 with its id and state. A CAP 1.2 alert
    (``application/cap+xml``) is taken in too: an Alert becomes an item, an Update a revision, a Cancel
    withdraws the item it references."""
    ledger = ledger_of(request)
    media = documents.media_type(request)
    if media in documents.CAP:
        done = alerts.receive(
            ledger,
            settings_of(request),
            body,
            user.name,
            source="body",
            broker=broker_of(request),
            allowed=user.require,  # a Cancel withdraws at once: it needs an approver too
        )
        return done.view()
    if media not in documents.JSON | documents.YAML and media:
        raise documents.unsupported(media, documents.JSON | documents.YAML | documents.CAP)
    item_id = approval.submit(ledger, document(request, body, user), draft=draft)
    return {"id": item_id, "state": "draft" if draft else "submitted"}


@router.post("/{item_id}/submit")
def submit_draft(
    user: Annotated[User, Depends(acting("submit"))], item_id: ItemId, request: Request
) -> Stored:
    """Submit a draft for review (``dispatch submit ID``)."""
    approval.submit_draft(ledger_of(request), item_id, by=user.name)
    return Stored(id=item_id, state="submitted")


@router.post("/{item_id}/revisions", status_code=201, openapi_extra=documents.described("Item"))
def update(
    user: Annotated[User, Depends(acting("update"))], body: Body, item_id: ItemId, request: Request
) -> Stored:
    """A new revision of an item (a correction), for review (``dispatch update ID FILE``)."""
    number = approval.revise(ledger_of(request), item_id, document(request, body, user))
    return Stored(id=item_id, state="submitted", revision=number)


@router.post("/{item_id}/approve")
def approve(
    user: Annotated[User, Depends(acting("approve"))], item_id: ItemId, request: Request
) -> dict[str, Any]:
    """Approve the submitted revision: pin its payloads and fan it out; never by its author. A severe
    warning waits for a second approver (``state: awaiting``)."""
    result = approval.approve(
        ledger_of(request), settings_of(request), item_id, user.name, broker_of(request)
    )
    return {
        "id": item_id,
        "state": "awaiting" if result.awaiting else "approved",
        "revision": result.publication.revision,
        "approvers": result.approvers,
        "awaiting": result.awaiting,
        "deliveries": result.per_channel if not result.awaiting else {},
        "enqueued": result.enqueued,
        "notes": result.notes,
    }


@router.post("/{item_id}/reject")
def reject(
    user: Annotated[User, Depends(acting("reject"))], reason: Reason, item_id: ItemId, request: Request
) -> Stored:
    """Reject the submitted revision (``dispatch reject ID --reason``)."""
    approval.reject(ledger_of(request), item_id, user.name, reason.reason)
    return Stored(id=item_id, state="rejected")


@router.post("/{item_id}/retract")
def retract(
    user: Annotated[User, Depends(acting("retract"))], reason: Reason, item_id: ItemId, request: Request
) -> dict[str, Any]:
    """Withdraw an item from every channel it reached, at once (``dispatch retract ID --reason``)."""
    done = withdrawals.retract(
        ledger_of(request), settings_of(request), item_id, user.name, reason.reason, broker_of(request)
    )
    return done.view()


@router.get("")
def status_page(
    user: Annotated[User, Depends(acting(READ))],
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=LARGEST_ID, description="The next page: next_before.")
    ] = None,
) -> dict[str, Any]:
    """Items and their deliveries, newest first, a page at a time (``dispatch status --json``)."""
    return reports.items_overview(ledger_of(request), limit=limit, before=before)


@router.get("/{item_id}")
def status(user: Annotated[User, Depends(acting(READ))], item_id: ItemId, request: Request) -> dict[str, Any]:
    """One item: its revisions, reviews and every delivery (``dispatch status ID --json``)."""
    return reports.item_status(ledger_of(request), item_id)


@router.get("/{item_id}/preview")
def preview_stored(
    user: Annotated[User, Depends(acting(READ))],
    item_id: ItemId,
    request: Request,
    channel: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Every payload a stored item sends, with its problems and notes (``dispatch preview ID --json``)."""
    check_channel(channel, ("query", "channel"))
    settings = settings_of(request)
    return previews.preview_view(previews.preview(ledger_of(request), settings, item_id, only=channel))


@router.get("/{item_id}/cap", response_class=Response, responses={200: {"content": {"application/xml": {}}}})
def cap(
    user: Annotated[User, Depends(acting(READ))],
    item_id: ItemId,
    request: Request,
    revision: Annotated[int | None, Query(ge=1, le=LARGEST_ID)] = None,
) -> Response:
    """A warning as a CAP 1.2 alert: Alert, Update for a correction, Cancel once withdrawn."""
    xml = alerts.export(ledger_of(request), settings_of(request), item_id, revision)
    return Response(xml, media_type="application/xml")


previewing = APIRouter(tags=["items"])


@previewing.post("/preview", openapi_extra=documents.described("Item"))
def preview(
    user: Annotated[User, Depends(acting(READ))],
    body: Body,
    request: Request,
    channel: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Every payload an unsaved item document would send (``dispatch preview FILE --json``)."""
    check_channel(channel, ("query", "channel"))
    settings = settings_of(request)
    data = documents.previewed(body, request, user.name)
    item = parse_item(data, "body")
    return previews.preview_view(previews.preview(ledger_of(request), settings, item, only=channel))
