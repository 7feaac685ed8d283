"""The channel status page: the one page an operator leaves open on a wall screen.

- ``GET /`` and ``GET /status`` — the page itself, a static shell (``static/status.html``, its CSS and its
  script under ``/status/``): no data and no token in it, so anyone may load it; the script asks for a
  token and keeps it in the browser's local storage until "Sign out".
- ``GET /api/v1/monitor`` — what the page shows, for any user: :func:`dispatcher.monitor.snapshot` (every
  channel and target with its health, circuit, waiting deliveries, success rates, approval-to-sent
  median and p95; recent items; overdue and dead deliveries), the latest morning digest, who is asking
  and with which roles (the page enables the re-drive buttons for operators only; the API refuses the
  others anyway), the office's time zone (the browser writes every time in it) and how often to ask.
- ``GET /api/v1/items/{id}/views`` — what each channel shows for an item, as the page draws it: a sign's
  pages on its lines and characters, the SMS text with its encoding and segment count, the microblog post
  with its length and limit, the web article's title and HTML.

**Polling, not server-sent events.** The page asks again every ``refresh_seconds`` (half the probe
interval, between 0.5 and 5 s): a wall screen loses nothing by a second's delay, and a server with no
stream held open by a browser stops at once (an open event stream keeps the server's shutdown waiting,
in tests and in ``dispatch serve`` alike), and a proxy in between needs nothing special.

**Probing while the server runs.** The page must show a channel going down within one probe interval,
so the router comes with a lifespan that runs :func:`dispatcher.monitor.check` every
``DISPATCH_MONITOR__PROBE_INTERVAL`` seconds in a thread from the server's start to its stop. The beat
runs the same checks; the monitor records each change with compare-and-set, so both running at once
record it once.

The page's script inserts data with ``textContent`` only, and the page is served with a strict
Content-Security-Policy (scripts and styles from this server alone, no inline script, no plugin, no
framing of the page, no form submission): a title or an error a peer sent back cannot become markup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse

from channels import build_channel
from channels.base import Channel
from dispatcher import digest, monitor, previews
from dispatcher.errors import NotFoundError
from dispatcher.identity import User
from dispatcher.ledger import Ledger
from dispatcher.web.auth import acting
from dispatcher.web.items import ItemId
from dispatcher.words import Payload, Target
from settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: the files of the page besides its HTML, and their types: nothing else under static/ is served
ASSETS = {"status.css": "text/css; charset=utf-8", "status.js": "text/javascript; charset=utf-8"}
#: Scripts, styles and requests to this server only; the article preview's frame is a srcdoc with an
#: empty sandbox, so it runs nothing either. No form posts anywhere: the token form is handled by script,
#: and a form sent without it would put the token in a URL.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: the user asking for the page's data: anyone with a token ("status" is reading, open to every role)
Reader = Annotated[User, Depends(acting("status"))]
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def refresh_seconds(probe_interval: float) -> float:
    """How often the page asks: twice per probe interval, so a change shows within about one interval,
    but never more than every half second nor less than every 5 s."""
    return min(max(probe_interval / 2, 0.5), 5.0)


class Prober:
    """:func:`dispatcher.monitor.check` every ``interval`` seconds in a thread, until :meth:`stop`."""

    def __init__(self, ledger: Ledger, settings: Settings, interval: float) -> None:
        self.ledger, self.settings, self.interval = ledger, settings, interval
        self.adapters: dict[str, Channel] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="status-probes", daemon=True)

    def channel_for(self, name: str) -> Channel:
        """The adapter of ``name``, built once: a sign registry is read once, not every interval."""
        if name not in self.adapters:
            self.adapters[name] = build_channel(name, self.settings)
        return self.adapters[name]

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                monitor.check(self.ledger, self.settings, self.channel_for)
            except Exception:  # a ledger briefly locked or gone must not end the page's probing
                log.exception("the status page's channel check failed; trying again in %s s", self.interval)
            self.stopped.wait(self.interval)

    def start(self) -> Prober:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        # A probe in flight ends within its channel's timeout; the server does not wait that long for it
        # (the thread is a daemon, and a check interrupted midway changes nothing: it writes at the end).
        self.thread.join(timeout=5.0)


# -- what each channel shows -------------------------------------------------------------------------


def _sign(adapter: Channel, payload: Payload) -> dict[str, Any]:
    body = payload.body
    sign = getattr(adapter, "signs", {}).get(body["sign"])
    if sign is None:  # taken out of the registry since: the pages still say what it would show
        raise NotFoundError(f"sign {body['sign']!r} is not in the sign registry")
    return {
        "sign": body["sign"],
        "name": sign.name,
        "lines": sign.lines,
        "chars_per_line": sign.chars_per_line,
        "max_pages": sign.max_pages,
        "pages": body["pages"],
        "priority": body["priority"],
        "multi": body["multi"],
    }


def _sms(adapter: Channel, payload: Payload) -> dict[str, Any]:
    body = payload.body
    return {
        "text": body["text"],
        "encoding": body["encoding"],
        "segments": body["segments"],
        "characters": body["characters"],
        "recipients": body.get("recipients", len(body.get("to", []))),
        "limit": adapter.limits(Target(payload.target)).get("segments"),
    }


def _microblog(adapter: Channel, payload: Payload) -> dict[str, Any]:
    body = payload.body
    return {
        "account": body["account"],
        "text": body["text"],
        "length": body["length"],
        "limit": adapter.limits(Target(payload.target)).get("length"),
    }


def _website(adapter: Channel, payload: Payload) -> dict[str, Any]:
    body = payload.body
    # HTML, as the site will show it: the page puts it in a sandboxed frame, never in its own DOM.
    return {
        "title": body["title"],
        "content": body["content"],
        "slug": body["slug"],
        "link": body.get("link"),
    }


#: How the page draws each channel; a channel not named here is shown as its adapter describes it.
SHOWN: dict[str, Callable[[Channel, Payload], dict[str, Any]]] = {
    "display": _sign,
    "sms": _sms,
    "microblog": _microblog,
    "website": _website,
}


def views(ledger: Ledger, settings: Settings, item_id: int) -> dict[str, Any]:
    """Per payload of item ``item_id`` (rendered as approval would pin it, nothing written), what its
    channel shows, with the preview's problems and notes."""
    plan = previews.preview(ledger, settings, item_id)
    shown = []
    for payload in plan.payloads:
        adapter = plan.adapters.get(payload.channel) or build_channel(payload.channel, settings)
        draw = SHOWN.get(payload.channel)
        detail = draw(adapter, payload) if draw else {"lines": adapter.describe(payload)}
        shown.append({"channel": payload.channel, "target": payload.target, **detail})
    return {"item": item_id, "views": shown, "problems": plan.problems, "notes": plan.notes}


# -- the router --------------------------------------------------------------------------------------


def router(settings: Settings, ledger: Ledger, *, probe_interval: float | None = None) -> APIRouter:
    """The page's routes, and a lifespan probing the channels every ``probe_interval`` seconds (default
    ``settings.monitor.probe_interval``; 0: no probing here, the beat's checks alone)."""
    interval = settings.monitor.probe_interval if probe_interval is None else probe_interval

    @asynccontextmanager
    async def probing(app: FastAPI) -> AsyncIterator[None]:
        prober = Prober(ledger, settings, interval).start() if interval > 0 else None
        try:
            yield
        finally:
            if prober is not None:
                prober.stop()

    routes = APIRouter(lifespan=probing)

    @routes.get("/", include_in_schema=False)
    @routes.get("/status", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "status.html", media_type="text/html; charset=utf-8", headers=HEADERS)

    @routes.get("/status/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NotFoundError(f"no {name!r} on the status page")
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)

    @routes.get("/api/v1/monitor", tags=["status"])
    def monitor_view(user: Reader) -> JSONResponse:
        """Every channel's and target's health and figures, recent items, overdue and dead deliveries,
        the latest morning digest; who asks, the office's time zone, and how often to ask again."""
        body = monitor.snapshot(ledger, settings)
        with ledger.session() as session:
            body["digest"] = digest.latest_digest(session)
        body["user"] = {"name": user.name, "roles": sorted(role.value for role in user.roles)}
        body["time_zone"] = settings.time_zone
        body["refresh_seconds"] = refresh_seconds(interval or settings.monitor.probe_interval)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @routes.get("/api/v1/items/{item_id}/views", tags=["status"])
    def item_views(item_id: ItemId, user: Reader) -> dict[str, Any]:
        """What each channel shows for the item: sign pages, SMS text and segments, post, article."""
        return views(ledger, settings, item_id)

    return routes
