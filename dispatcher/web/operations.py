"""What operators do over HTTP: re-drive deliveries, look at the channels, keep the subscriber list.

``POST /deliveries/{id}/redrive`` re-drives one dead delivery (the status page's button), 409 if it is
not dead; ``POST /deliveries/redrive`` re-drives by channel or item, as ``dispatch redrive`` does.
``GET /metrics`` gives the ledger's counts and the broker's queue depths to Prometheus.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from dispatcher import metrics, outbox, reports, subscribers
from dispatcher.identity import User
from dispatcher.tasks import queues
from dispatcher.web import documents
from dispatcher.web.auth import READ, acting, broker_of, ledger_of, settings_of
from dispatcher.web.items import LARGEST_ID, check_channel

router = APIRouter(tags=["operations"])


class Redrive(BaseModel):
    """Which deliveries to send again: the dead ones (``failed``: failed ones too, with a reason)."""

    channel: str | None = Field(None, max_length=40, description="Only this channel's deliveries.")
    item: int | None = Field(None, ge=1, le=LARGEST_ID, description="Only this item's deliveries.")
    failed: bool = Field(False, description="Failed deliveries too: overrides a refusal; needs a reason.")
    reason: str = Field("", max_length=2000, description="Why (kept in the ledger).")


class OneRedrive(BaseModel):
    reason: str = Field("", max_length=2000, description="Why (kept in the ledger).")


class Redriven(BaseModel):
    redriven: list[int]


@router.post("/deliveries/redrive")
def redrive(user: Annotated[User, Depends(acting("redrive"))], wanted: Redrive, request: Request) -> Redriven:
    """Give dead (and with ``failed``, failed) deliveries a fresh retry budget and send them again."""
    check_channel(wanted.channel, ("body", "channel"))
    found = outbox.redrive(
        ledger_of(request),
        broker_of(request),
        user.name,
        channel=wanted.channel,
        item_id=wanted.item,
        failed=wanted.failed,
        reason=wanted.reason,
    )
    return Redriven(redriven=found)


@router.post("/deliveries/{delivery_id}/redrive")
def redrive_one(
    user: Annotated[User, Depends(acting("redrive"))],
    delivery_id: Annotated[int, Path(ge=1, le=LARGEST_ID)],
    request: Request,
    wanted: OneRedrive | None = None,
) -> Redriven:
    """Send one dead delivery again with a fresh retry budget; 409 if it is not dead."""
    found = outbox.redrive(
        ledger_of(request),
        broker_of(request),
        user.name,
        delivery_id=delivery_id,
        reason=wanted.reason if wanted else "",
    )
    return Redriven(redriven=found)


@router.get("/channels")
def channels(user: Annotated[User, Depends(acting(READ))], request: Request) -> dict[str, Any]:
    """Every channel probed (reachable, credentials accepted, how fast) and the circuits not closed."""
    return reports.channel_health(ledger_of(request), settings_of(request))


@router.get("/subscribers")
def subscriber_list(
    user: Annotated[User, Depends(acting("subscribers"))], request: Request
) -> list[dict[str, Any]]:
    """Every subscriber with areas, topics, consent and opt-out (``dispatch subscribers list``): phone
    numbers, so for operators only."""
    return subscribers.list_subscribers(ledger_of(request))


@router.post(
    "/subscribers",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string", "description": "phone,areas,topics,consent"}}
            },
        }
    },
)
def subscriber_import(
    user: Annotated[User, Depends(acting("subscribers"))],
    body: Annotated[bytes, Depends(documents.raw_body)],
    request: Request,
) -> dict[str, Any]:
    """Import subscribers from a CSV body (``dispatch subscribers import``); bad rows are listed."""
    media = documents.media_type(request)
    if media not in documents.CSV:
        raise documents.unsupported(media, documents.CSV)
    # The import streams a file (a list of millions is read a slice at a time): the body becomes one.
    descriptor, name = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
        report = subscribers.import_csv(
            ledger_of(request), FilePath(name), settings_of(request).sms, by=user.name
        )
    finally:
        os.unlink(name)
    return {
        "created": report.created,
        "updated": report.updated,
        "merged": report.merged,
        "refused_rows": report.refused_rows,
        "refused": [{"line": line, "problem": problem} for line, problem in report.refused],
    }


#: ``/metrics`` stands beside ``/api/v1``, where Prometheus looks by default.
scraping = APIRouter(tags=["operations"])


@scraping.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "The Prometheus text format."}},
)
def scrape(user: Annotated[User, Depends(acting(READ))], request: Request) -> Response:
    """Counts from the ledger, and the broker's queue depths, in Prometheus's text format. Any user's
    token will do (Prometheus sends it: ``authorization: {credentials_file: …}`` in its scrape config);
    an auditor's is the usual choice."""
    broker = broker_of(request)
    depths = getattr(broker, "depths", None)
    read = (lambda: depths(set(queues()))) if depths is not None else None
    return Response(
        metrics.exposition(ledger_of(request), settings_of(request), read), media_type=metrics.CONTENT_TYPE
    )
