"""The ledger for auditors over HTTP: the disclosure export (CSV or an Excel workbook, as a download)
and the check of the event log's chain and the quarterly disclosure report — what ``dispatch ledger export``,
``ledger verify`` and ``report`` do, for the ``ledger`` action (auditors).
"""

from __future__ import annotations

import io
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from dispatcher import disclosure, exports
from dispatcher.errors import InvalidItemError
from dispatcher.identity import User
from dispatcher.ledger import verify_chain
from dispatcher.web.auth import acting, ledger_of, settings_of

router = APIRouter(prefix="/ledger", tags=["ledger"])
#: the days an export may span: a day past the calendar's last cannot be the end of a range
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX: {}}, "description": "The rows, as a download."}},
)
def export(
    user: Annotated[User, Depends(acting("ledger"))],
    request: Request,
    start: Annotated[date, Query(alias="from", description="First day (the office's time zone).")],
    end: Annotated[date, Query(alias="to", description="Last day, included.")],
    kind: Annotated[Literal["csv", "xlsx"], Query(alias="format")] = "csv",
) -> Response:
    """The disclosure ledger: one row per item × channel × target, for items approved in those days. The
    CSV is the file ``dispatch ledger export -o FILE`` writes: UTF-8 with a byte-order mark, for Excel."""
    _span(start, end)
    found = exports.rows(ledger_of(request), settings_of(request), start, end)
    name = f"ledger-{start}-{end}.{kind}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if kind == "csv":
        out = io.StringIO(newline="")
        exports.write_csv(found, out)
        return Response(
            out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8", headers=headers
        )
    # openpyxl writes a workbook to a file; it is read back whole (a quarter's rows fit in memory).
    descriptor, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(descriptor)
    try:
        exports.write_xlsx(found, Path(path))
        data = Path(path).read_bytes()
    finally:
        os.unlink(path)
    return Response(data, media_type=XLSX, headers=headers)


@router.get("/verify")
def verify(user: Annotated[User, Depends(acting("ledger"))], request: Request) -> dict[str, Any]:
    """Walk the event log's chain of hashes: ``intact``, how many events check out, the first broken
    one (or null) and the head."""
    with ledger_of(request).session() as session:
        checked, broken, head = verify_chain(session)
    return {"intact": broken is None, "checked": checked, "broken_at": broken, "head": head}


@router.get(
    "/report",
    responses={200: {"content": {"application/json": {}, "text/html": {}}, "description": "The report."}},
)
def report(
    user: Annotated[User, Depends(acting("ledger"))],
    request: Request,
    quarter: Annotated[str | None, Query(description="A quarter, e.g. 2026Q4.")] = None,
    start: Annotated[date | None, Query(alias="from", description="Or the first day…")] = None,
    end: Annotated[date | None, Query(alias="to", description="…and the last, included.")] = None,
    kind: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Response:
    """The disclosure report (``dispatch report``) of a quarter, or of the days ``from`` to ``to``: as
    JSON, or as the self-contained HTML page a disclosure office publishes."""
    ledger, settings = ledger_of(request), settings_of(request)
    if quarter is not None and (start or end):
        raise _invalid("quarter", "give a quarter, or from and to, not both")
    if quarter is not None:
        try:
            found = disclosure.quarterly(ledger, settings, quarter)
        except InvalidItemError as exc:  # a query parameter, not a body's field
            raise _invalid("quarter", exc.problems[0][1]) from None
    elif start is None or end is None:
        raise _invalid("quarter", "give a quarter (2026Q4), or from and to")
    else:
        _span(start, end)
        found = disclosure.compile_report(ledger, settings, start, end)
    if kind == "html":
        return HTMLResponse(disclosure.render_html(found, settings))
    return JSONResponse(found.to_json())


def _span(start: date, end: date) -> None:
    """Days the ledger can hold, in order; a 422 naming the query parameter otherwise."""
    for name, day in (("from", start), ("to", end)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise _invalid(name, f"must be from {FIRST_DAY} to {LAST_DAY}")
    if end < start:
        raise _invalid("to", "comes before from")


def _invalid(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])
