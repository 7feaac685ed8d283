"""Take the README's picture of the status page: ``python docs/screenshot.py [docs/status-page.png]``.

Starts the sandbox emulators, a ledger in a temporary directory with the example items (some sent, a
microblog post dead, a warning not sent and looked at ten minutes later: overdue), the server with the
page, then takes one sign off the network so that it shows down (its channel degraded), and
photographs the page in headless chromium (Debian's ``chromium``, driven by Playwright) as an operator
sees it, with the warning's preview open.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import expect, sync_playwright

from dispatcher import approval, identity
from dispatcher.delivery import deliver
from dispatcher.errors import RefusedError
from dispatcher.identity import Role
from dispatcher.items import load_item
from dispatcher.ledger import DeliveryRow, Ledger
from dispatcher.sandboxes import sandbox_for
from dispatcher.serving import serve_app_in_thread
from dispatcher.subscribers import import_csv
from dispatcher.web import page
from dispatcher.web.app import create_app
from settings import PROJECT_DIR, RetryBudget, load_settings

EXAMPLES = PROJECT_DIR / "examples"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def published(ledger: Ledger, settings: object, name: str) -> int:
    """Submit and approve an example item (two approvers when its severity asks for two)."""
    item_id = approval.submit(ledger, load_item(EXAMPLES / name))
    for approver in ("陈刚", "王强"):
        try:
            approval.approve(ledger, settings, item_id, approver, None)  # type: ignore[arg-type]
        except RefusedError:  # one approval was enough
            break
    return item_id


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = load_settings(var_dir=Path(scratch), monitor={"probe_interval": 1.0})
        box = sandbox_for(base).start()
        try:
            settings = load_settings(var_dir=Path(scratch), monitor={"probe_interval": 1.0}, **_pointed(box))
            ledger = Ledger(settings.ledger_url)
            import_csv(ledger, EXAMPLES / "subscribers.csv", settings.sms)
            admin = identity.bootstrap(ledger, "管理员 王芳")
            operator = identity.add(ledger, admin.user, "运维 李雷", frozenset({Role.operator}))

            tip = published(ledger, settings, "safety_tip.yaml")
            release = published(ledger, settings, "release.yaml")
            one_try = settings.model_copy(
                update={"retry_budgets": {"microblog": RetryBudget(attempts=1, seconds=3600)}}
            )
            with ledger.session() as session:
                rows = session.query(DeliveryRow).filter(DeliveryRow.item_id.in_([tip, release])).all()
            for row in rows:
                if row.channel == "microblog" and row.item_id == release:
                    box.states["microblog"].faults.clear()
                    _fail_next_post(box)
                    deliver(ledger, one_try, row.id, "screenshot")
                else:
                    deliver(ledger, settings, row.id, "screenshot")
            warning = published(ledger, settings, "warning.yaml")
            ledger.shift = timedelta(minutes=10)  # the page looks ten minutes on: the warning is overdue
            app = create_app(settings, ledger, None, extra_routers=[page.router(settings, ledger)])
            server = serve_app_in_thread(app, "127.0.0.1", 0, "status-page")
            signs = box.urls["display"]  # one sign off the network: it is down, the channel degraded
            requests.post(f"{signs}/_sandbox/signs/BJ-CY-002/offline", json={"offline": True}, timeout=5)
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                    tab = browser.new_page(viewport={"width": 1500, "height": 900})
                    tab.goto(f"http://127.0.0.1:{server.port}/")
                    tab.fill("#token", operator.token)
                    tab.click("#login-form button")
                    cell = '#channels tr[data-channel="display"][data-target="BJ-CY-002"] td.state'
                    expect(tab.locator(cell)).to_have_text("down", timeout=10_000)
                    tab.locator(f'#items tr[data-item="{warning}"] button.show').click()
                    expect(tab.locator(".view.sign").first).to_be_visible()
                    tab.screenshot(path=str(out), full_page=True)
                    browser.close()
            finally:
                server.stop()
                ledger.dispose()
        finally:
            box.stop()
    print(f"wrote {out}")


def _pointed(box: object) -> dict[str, dict[str, str]]:
    values: dict[str, dict[str, str]] = {}
    for name, value in box.environment().items():  # type: ignore[attr-defined]
        section, _, key = name.removeprefix("DISPATCH_").lower().partition("__")
        values.setdefault(section, {})[key] = value
    return values


def _fail_next_post(box: object) -> None:
    import requests

    url = box.urls["microblog"]  # type: ignore[attr-defined]
    fault: dict[str, Any] = {"mode": "status", "status": 500, "method": "POST"}
    requests.post(f"{url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PROJECT_DIR / "docs" / "status-page.png")
