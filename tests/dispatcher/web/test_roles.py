"""Who may call what: every endpoint of the API, with no token, a bad one, a disabled user's, and each
role's. The endpoints are read from the OpenAPI document, so one added without an entry here fails."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dispatcher.identity import PERMISSIONS, Role
from tests.dispatcher.web import ADMIN, PEOPLE, Api
from tests.support import item_doc

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
_names = itertools.count()


def rota_yaml() -> bytes:
    """The example rota, with no author line: the user who submits it is its author."""
    text = (EXAMPLES / "rota.yaml").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("author:")).encode()


def as_json(document: Callable[[], Any]) -> Callable[[], dict[str, Any]]:
    return lambda: {"json": document()}


def yaml_body(document: Callable[[], bytes]) -> Callable[[], dict[str, Any]]:
    return lambda: {"data": document(), "headers": {"Content-Type": "application/yaml"}}


NOTHING: Callable[[], dict[str, Any]] = dict
ITEM = as_json(lambda: item_doc(author=None))
REASON = as_json(lambda: {"reason": "核实有误"})
ROTA = yaml_body(rota_yaml)
#: (method, path) → (the action it needs — an entry of PERMISSIONS, "read" for every user, or a set of
#: actions any of which will do — and the request's body)
MATRIX: dict[tuple[str, str], tuple[str | frozenset[str], Callable[[], dict[str, Any]]]] = {
    ("POST", "/api/v1/items"): ("submit", ITEM),
    ("GET", "/api/v1/items"): ("read", NOTHING),
    ("GET", "/api/v1/items/{item_id}"): ("read", NOTHING),
    ("POST", "/api/v1/items/{item_id}/submit"): ("submit", NOTHING),
    ("POST", "/api/v1/items/{item_id}/revisions"): ("update", ITEM),
    ("POST", "/api/v1/items/{item_id}/approve"): ("approve", NOTHING),
    ("POST", "/api/v1/items/{item_id}/reject"): ("reject", REASON),
    ("POST", "/api/v1/items/{item_id}/retract"): ("retract", REASON),
    ("GET", "/api/v1/items/{item_id}/preview"): ("read", NOTHING),
    ("GET", "/api/v1/items/{item_id}/cap"): ("read", NOTHING),
    ("POST", "/api/v1/preview"): ("read", ITEM),
    ("POST", "/api/v1/deliveries/redrive"): ("redrive", as_json(lambda: {"channel": "website"})),
    ("POST", "/api/v1/deliveries/{delivery_id}/redrive"): ("redrive", NOTHING),
    ("GET", "/api/v1/channels"): ("read", NOTHING),
    ("GET", "/api/v1/subscribers"): ("subscribers", NOTHING),  # phone numbers
    ("POST", "/api/v1/subscribers"): (
        "subscribers",
        lambda: {
            "data": b"phone,areas,topics,consent\n13900139000,110105,safety,yes\n",
            "headers": {"Content-Type": "text/csv"},
        },
    ),
    ("GET", "/api/v1/rotas"): ("read", NOTHING),
    ("POST", "/api/v1/rotas"): ("rota.submit", ROTA),
    ("POST", "/api/v1/rotas/preview"): ("read", ROTA),
    ("POST", "/api/v1/rotas/{ref}/approve"): ("rota.review", NOTHING),
    ("POST", "/api/v1/rotas/{ref}/reject"): ("rota.review", REASON),
    ("POST", "/api/v1/rotas/{ref}/pause"): ("rota.run", NOTHING),
    ("POST", "/api/v1/rotas/{ref}/resume"): ("rota.run", NOTHING),
    ("POST", "/api/v1/rotas/{ref}/retire"): ("rota.run", NOTHING),
    ("GET", "/api/v1/whoami"): ("read", NOTHING),
    ("GET", "/api/v1/users"): (frozenset({"users", "ledger"}), NOTHING),
    ("POST", "/api/v1/users"): (
        "users",
        as_json(lambda: {"name": f"新人{next(_names)}", "roles": ["author"]}),
    ),
    # another user's token: an admin's business (a user may renew their own: tested below)
    ("POST", "/api/v1/users/{name}/token"): ("users", NOTHING),
    ("POST", "/api/v1/users/{name}/disable"): ("users", NOTHING),
    ("POST", "/api/v1/users/{name}/enable"): ("users", NOTHING),
    ("PUT", "/api/v1/users/{name}/roles"): ("users", as_json(lambda: {"roles": ["author"]})),
    ("GET", "/api/v1/ledger/export"): ("ledger", NOTHING),
    ("GET", "/api/v1/ledger/verify"): ("ledger", NOTHING),
    ("GET", "/api/v1/ledger/report"): ("ledger", NOTHING),
    ("GET", "/metrics"): ("read", NOTHING),
    ("GET", "/api/v1/monitor"): ("read", NOTHING),
    ("GET", "/api/v1/items/{item_id}/views"): ("read", NOTHING),
}
#: the gateway's callbacks carry their own credentials (tests/dispatcher/test_api.py)
OUTSIDE = {("GET", "/health"), ("GET", "/sms/dlr"), ("GET", "/sms/mo")}
PATH_VALUES = {"{item_id}": "1", "{delivery_id}": "1", "{ref}": "1", "{name}": "无此人"}
QUERIES = {
    "/api/v1/ledger/export": {"from": "2026-01-01", "to": "2026-03-31"},
    "/api/v1/ledger/report": {"quarter": "2026Q1"},
}


def endpoints(api: Api) -> set[tuple[str, str]]:
    """Every (method, path) the OpenAPI document names."""
    document = api.call("GET", "/openapi.json").json()
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def concrete(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace(name, value)
    return path


def allowed(roles: frozenset[Role], action: str | frozenset[str]) -> bool:
    actions = {action} if isinstance(action, str) else action
    return any(a == "read" or roles & PERMISSIONS[a] for a in actions)


def test_every_endpoint_is_in_the_matrix(api: Api) -> None:
    found = endpoints(api)
    assert found - OUTSIDE == set(MATRIX), "an endpoint needs its row in MATRIX, or one there is gone"
    assert OUTSIDE <= found
    assert all(not isinstance(a, str) or a == "read" or a in PERMISSIONS for a, _ in MATRIX.values())


def test_without_a_valid_token_nothing_is_done(api: Api) -> None:
    """No token, a malformed one, a wrong one, a disabled user's: 401 with WWW-Authenticate, and the
    ledger unchanged."""
    before = api.events()
    forged = "dsp_0123456789ab_" + "A" * 43
    for (method, path), (_, body) in MATRIX.items():
        for who in (None, "not-a-token", forged, "停用"):
            request = body()
            if who is None and method == "GET":  # a token of another scheme is no token
                request["headers"] = {**request.get("headers", {}), "Authorization": "Basic dXNlcjpwYXNz"}
            answer = api.call(method, concrete(path), who, params=QUERIES.get(path), **request)
            assert answer.status_code == 401, (method, path, who, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert api.events() == before


def test_each_role_may_do_what_the_permissions_say_and_nothing_else(api: Api) -> None:
    """Each user with one role: 403 where PERMISSIONS does not allow it (nothing changed), otherwise an
    answer about the request itself (200, 404, 409, 422…), never a 401, 403 or 500."""
    for name in [ADMIN, *PEOPLE]:
        if name == "停用":
            continue
        roles = frozenset({Role.admin}) if name == ADMIN else PEOPLE[name]
        for (method, path), (action, body) in MATRIX.items():
            before = api.events()
            answer = api.call(method, concrete(path), name, params=QUERIES.get(path), **body())
            if allowed(roles, action):
                assert answer.status_code not in (401, 403), (name, method, path, answer.text)
                assert answer.status_code < 500, (name, method, path, answer.text)
            else:
                assert answer.status_code == 403, (name, method, path, answer.text)
                assert "needs the role" in answer.json()["detail"]
                assert api.events() == before, (name, method, path)


def test_a_user_renews_their_own_token_and_no_one_elses(api: Api) -> None:
    own = api.call("POST", "/api/v1/users/作者/token", "作者")
    assert own.status_code == 200
    assert api.call("GET", "/api/v1/whoami", own.json()["token"]).json()["name"] == "作者"
    assert api.call("GET", "/api/v1/whoami", "作者").status_code == 401  # the old one stopped working
    assert api.call("POST", "/api/v1/users/审核一/token", "运维").status_code == 403


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_the_bearer_scheme_is_read_whatever_its_case(api: Api, scheme: str) -> None:
    answer = api.call("GET", "/api/v1/whoami", headers={"Authorization": f"{scheme} {api.tokens['审计']}"})
    assert answer.json() == {"name": "审计", "roles": ["auditor"]}
