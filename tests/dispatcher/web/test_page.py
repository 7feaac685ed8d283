"""The status page's data without a browser: what each channel shows, and how often the page asks."""

from __future__ import annotations

from dispatcher import approval
from dispatcher.items import parse_item
from dispatcher.ledger import Ledger
from dispatcher.web import page
from settings import Settings
from tests.support import item_doc


def test_views_carry_each_signs_size_from_the_registry_and_each_channels_limit(
    ledger: Ledger, settings: Settings
) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc()))
    shown = page.views(ledger, settings, item_id)["views"]
    signs = {v["target"]: v for v in shown if v["channel"] == "display"}
    # tests/conftest.py's registry: BJ-CY-001 2 × 12 up to 6 pages, BJ-CY-002 3 × 16 up to 4
    assert {t: (v["lines"], v["chars_per_line"], v["max_pages"]) for t, v in signs.items()} == {
        "BJ-CY-001": (2, 12, 6),
        "BJ-CY-002": (3, 16, 4),
    }
    for view in signs.values():
        assert all(
            len(p) <= view["lines"] and all(len(line) <= view["chars_per_line"] for line in p)
            for p in view["pages"]
        )
    post = next(v for v in shown if v["channel"] == "microblog")
    assert post["limit"] == settings.microblog.max_length  # the Weibo account's limit, not a default
    sms = next(v for v in shown if v["channel"] == "sms")
    assert sms["segments"] >= 1 and sms["encoding"] == "UCS-2"


def test_the_page_asks_twice_per_probe_interval_within_bounds() -> None:
    assert page.refresh_seconds(1.0) == 0.5
    assert page.refresh_seconds(0.2) == 0.5
    assert page.refresh_seconds(30.0) == 5.0
