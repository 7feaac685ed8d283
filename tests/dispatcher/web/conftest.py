"""The running API of a test (see ``tests.dispatcher.web``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dispatcher.ledger import Ledger
from settings import Settings
from tests.dispatcher.web import Api, running_api


@pytest.fixture
def api(settings: Settings, ledger: Ledger) -> Iterator[Api]:
    yield from running_api(settings, ledger)
