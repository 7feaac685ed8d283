"""The ledger for auditors over HTTP: the disclosure export (CSV or an Excel workbook, as a download)
and the check of the event log's chain — what ``dispatch ledger export`` and ``verify`` do, for the
``ledger`` action (auditors).
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

from dispatcher import exports
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
    for name, day in (("from", start), ("to", end)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": f"must be from {FIRST_DAY} to {LAST_DAY}",
                        "type": "value_error",
                    }
                ]
            )
    if end < start:
        raise RequestValidationError(
            [{"loc": ("query", "to"), "msg": "comes before from", "type": "value_error"}]
        )
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


# The quarterly disclosure report (dispatcher.disclosure.quarterly(ledger, settings, quarter)) is wired
# here once that module is merged: GET /ledger/report?quarter=2026Q1, for the ``ledger`` action.
