"""The status page in a real headless browser: Debian's chromium driven by Playwright, against the real
server on 127.0.0.1 (uvicorn in a thread), a real ledger and the sandbox emulators.

One browser for the module; each test has its own server, ledger and emulators, and its own browser
context (a fresh local storage: the token typed in one test is not there in the next). chromium is
installed by ``make test`` (``test-packages``): without it these tests fail, they do not skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from dispatcher import approval, identity
from dispatcher.delivery import deliver
from dispatcher.identity import Role
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger
from dispatcher.serving import Listening, serve_app_in_thread
from dispatcher.web import page
from dispatcher.web.app import create_app
from sandbox.server import Sandbox
from settings import RetryBudget, Settings, load_settings
from tests.conftest import subscribe
from tests.support import approved, inject, item_doc, merged, pointed_at, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: seconds between the server's probes of the channels; the page asks twice as often
PROBE = 1.0
#: a bound on waiting for the page to show a change: a probe interval, a refresh, and room for a busy
#: machine (a bound to wait within, not a time asserted)
SHOWN = (PROBE + page.refresh_seconds(PROBE) + 4) * 1000
WORKER = "test-worker"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "chromium is missing: make test installs it (apt package chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@dataclass
class Board:
    """The status page's server, with what stands behind it."""

    url: str
    settings: Settings
    ledger: Ledger
    sandbox: Sandbox
    operator: str
    auditor: str


@pytest.fixture
def board(values: dict[str, Any], sandbox: Sandbox) -> Iterator[Board]:
    settings = load_settings(**merged(values, pointed_at(sandbox), monitor={"probe_interval": PROBE}))
    ledger = Ledger(settings.ledger_url)
    subscribe(ledger, settings)
    admin = identity.bootstrap(ledger, "管理员 王芳")
    operator = identity.add(ledger, admin.user, "运维 李雷", frozenset({Role.operator}))
    auditor = identity.add(ledger, admin.user, "审计 韩梅", frozenset({Role.auditor}))
    app = create_app(settings, ledger, None, extra_routers=[page.router(settings, ledger)])
    running: Listening = serve_app_in_thread(app, "127.0.0.1", 0, "status-page")
    yield Board(f"http://127.0.0.1:{running.port}", settings, ledger, sandbox, operator.token, auditor.token)
    running.stop()
    ledger.dispose()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 1600, "height": 1000})
    yield opened
    opened.close()


def signed_in(context: BrowserContext, board: Board, token: str) -> Page:
    tab = context.new_page()
    tab.goto(f"{board.url}/")
    tab.fill("#token", token)
    tab.click("#login-form button")
    expect(tab.locator("#user")).not_to_be_empty()
    return tab


def health(tab: Page, channel: str, target: str = "*") -> Any:
    return tab.locator(f'#channels tr[data-channel="{channel}"][data-target="{target}"] td.state')


def state_of(ledger: Ledger, delivery_id: int) -> DeliveryState:
    with ledger.session() as session:
        return session.get_one(DeliveryRow, delivery_id).state


def test_the_shell_loads_without_a_token_under_a_strict_policy(board: Board) -> None:
    for path in ("/", "/status", "/status/status.js", "/status/status.css"):
        answer = requests.get(f"{board.url}{path}", timeout=5)
        assert answer.status_code == 200, path
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(f"{board.url}/status/page.py", timeout=5).status_code == 404
    assert requests.get(f"{board.url}/api/v1/monitor", timeout=5).status_code == 401


def test_a_stopped_emulator_shows_its_channel_down_and_back(context: BrowserContext, board: Board) -> None:
    tab = signed_in(context, board, board.auditor)
    for channel in ("website", "sms", "display", "microblog"):
        expect(health(tab, channel)).to_have_text("healthy", timeout=SHOWN)
    board.sandbox.pause("microblog")
    expect(health(tab, "microblog")).to_have_text("down", timeout=SHOWN)
    expect(health(tab, "microblog")).to_have_class("state state-down")
    expect(health(tab, "website")).to_have_text("healthy")
    board.sandbox.resume("microblog")
    expect(health(tab, "microblog")).to_have_text("healthy", timeout=SHOWN)


def test_one_sign_offline_is_shown_down_under_a_degraded_channel(
    context: BrowserContext, board: Board
) -> None:
    tab = signed_in(context, board, board.auditor)
    expect(health(tab, "display")).to_have_text("healthy", timeout=SHOWN)
    signs = board.sandbox.urls["display"]
    requests.post(f"{signs}/_sandbox/signs/BJ-CY-001/offline", json={"offline": True}, timeout=5)
    expect(health(tab, "display", "BJ-CY-001")).to_have_text("down", timeout=SHOWN)
    expect(health(tab, "display")).to_have_text("degraded")
    board.sandbox.pause("display")  # now no sign answers: the channel is down, and says nothing of its signs
    expect(health(tab, "display")).to_have_text("down", timeout=SHOWN)
    expect(health(tab, "display", "BJ-CY-001")).to_have_text("unknown")
    board.sandbox.resume("display")
    requests.post(f"{signs}/_sandbox/signs/BJ-CY-001/offline", json={"offline": False}, timeout=5)
    expect(health(tab, "display", "BJ-CY-001")).to_have_text("healthy", timeout=SHOWN)
    expect(health(tab, "display")).to_have_text("healthy", timeout=SHOWN)


def test_an_operator_redrives_a_dead_delivery_from_the_page_and_no_one_else_can(
    browser: Browser, context: BrowserContext, board: Board
) -> None:
    website = approved(board.ledger, board.settings, channels=["website"])[0]
    one_try = board.settings.model_copy(
        update={"retry_budgets": {"website": RetryBudget(attempts=1, seconds=3600)}}
    )
    inject(board.sandbox, "website", mode="status", status=500, method="POST")  # a probe does not GET it
    assert deliver(board.ledger, one_try, website.id, WORKER) is DeliveryState.dead

    auditor = browser.new_context()
    try:
        tab = signed_in(auditor, board, board.auditor)
        button = tab.locator(f'#dead tr[data-delivery="{website.id}"] button.redrive')
        expect(button).to_be_disabled()
        forged = tab.evaluate(
            """async ([id, token]) => (await fetch(`/api/v1/deliveries/${id}/redrive`, {
                method: "POST", headers: {Authorization: `Bearer ${token}`}})).status""",
            [website.id, board.auditor],
        )
        assert forged == 403
        assert state_of(board.ledger, website.id) is DeliveryState.dead
    finally:
        auditor.close()

    tab = signed_in(context, board, board.operator)
    button = tab.locator(f'#dead tr[data-delivery="{website.id}"] button.redrive')
    expect(button).to_be_enabled()
    button.click()
    wait_until(lambda: state_of(board.ledger, website.id) is DeliveryState.pending, what="the re-drive")
    expect(tab.locator(f'#dead tr[data-delivery="{website.id}"]')).to_have_count(0, timeout=SHOWN)
    with board.ledger.session() as session:
        event = session.query(EventRow).filter_by(name="delivery.redriven", delivery_id=website.id).one()
    assert event.actor == "运维 李雷"


def test_the_preview_draws_each_channel_as_the_preview_renders_it(
    context: BrowserContext, board: Board
) -> None:
    item_id = approval.submit(board.ledger, parse_item(item_doc(title="朝阳区暴雨<b>橙色</b>预警")))
    said = requests.get(
        f"{board.url}/api/v1/items/{item_id}/preview",
        headers={"Authorization": f"Bearer {board.auditor}"},
        timeout=10,
    )
    payloads = said.json()["payloads"]  # what the API's preview says each channel sends
    tab = signed_in(context, board, board.auditor)
    row = tab.locator(f'#items tr[data-item="{item_id}"]')
    expect(row).to_contain_text("朝阳区暴雨<b>橙色</b>预警")  # a title is text, never markup
    assert tab.locator("#items b").count() == 0
    row.locator("button.show").click()

    signs = {p["target"]: p for p in payloads if p["channel"] == "display"}
    lines = {"BJ-CY-001": 2, "BJ-CY-002": 3}  # tests/conftest.py's registry
    assert set(signs) == set(lines)
    for target, payload in signs.items():
        faces = tab.locator(f'.view.sign[data-target="{target}"] .sign-page')
        expect(faces).to_have_count(len(payload["pages"]))
        for number, shown in enumerate(payload["pages"]):
            expect(faces.nth(number).locator(".sign-line")).to_have_count(lines[target])
            for line, text in enumerate(shown):
                expect(faces.nth(number).locator(".sign-line").nth(line)).to_have_text(text)

    sms = next(p for p in payloads if p["channel"] == "sms")
    expect(tab.locator(".view.sms .segments")).to_have_text(str(sms["segments"]))
    expect(tab.locator(".view.sms .bubble")).to_have_text(sms["text"])

    post = next(p for p in payloads if p["channel"] == "microblog")
    expect(tab.locator(".view.microblog .measure")).to_have_text(f"{post['length']} / 140 characters")

    article = tab.locator(".view.website iframe")
    expect(article).to_have_attribute("sandbox", "")
    expect(tab.frame_locator(".view.website iframe").locator("h1")).to_have_text("朝阳区暴雨<b>橙色</b>预警")
