"""Items over HTTP: bodies in every format, the errors named by field, four eyes, the OpenAPI document."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.dispatcher.web import Api
from tests.support import item_doc

CAP = Path(__file__).resolve().parents[2] / "fixtures" / "cap"


def alert(name: str) -> bytes:
    """A CAP fixture, expiring tomorrow."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    text = (CAP / name).read_text(encoding="utf-8")
    return re.sub(r"<expires>[^<]+</expires>", f"<expires>{tomorrow}</expires>", text).encode()


def fields(answer: object) -> list[list[object]]:
    """The ``loc`` of every problem a 422 names."""
    return [problem["loc"] for problem in answer.json()["detail"]]  # type: ignore[attr-defined]


def test_an_item_is_submitted_as_json_or_yaml_and_its_author_is_the_caller(api: Api) -> None:
    as_json = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None))
    assert as_json.status_code == 201
    assert as_json.json()["state"] == "submitted"
    as_yaml = api.call(
        "POST",
        "/api/v1/items?draft=true",
        "作者",
        data=yaml.safe_dump(item_doc(author=None), allow_unicode=True).encode(),
        headers={"Content-Type": "application/yaml; charset=utf-8"},
    )
    assert as_yaml.status_code == 201
    assert as_yaml.json()["state"] == "draft"
    shown = api.call("GET", f"/api/v1/items/{as_json.json()['id']}", "审计").json()
    assert shown["author"] == "作者"
    submitted = api.call("POST", f"/api/v1/items/{as_yaml.json()['id']}/submit", "作者")
    assert submitted.json() == {"id": as_yaml.json()["id"], "state": "submitted", "revision": None}


def test_a_cap_alert_is_taken_in(api: Api) -> None:
    answer = api.call(
        "POST",
        "/api/v1/items",
        "作者",
        data=alert("warning-alert.xml"),
        headers={"Content-Type": "application/cap+xml"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["cap"] == "Alert"
    assert answer.json()["revision"] == 1
    item_id = answer.json()["id"]
    assert api.call("GET", f"/api/v1/items/{item_id}", "审计").json()["author"] == "作者"
    for approver in ("审核一", "审核二"):  # a severe warning needs two
        assert api.call("POST", f"/api/v1/items/{item_id}/approve", approver).status_code == 200
    exported = api.call("GET", f"/api/v1/items/{item_id}/cap", "审计")
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/xml")
    assert b"<msgType>Alert</msgType>" in exported.content


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (json.dumps(item_doc(author=None, severity="Apocalyptic")), "application/json", ["body", "severity"]),
        (json.dumps(item_doc(author=None, title=None)), "application/json", ["body", "title"]),
        (json.dumps(item_doc(author=None, areas="110105")), "application/json", ["body", "areas"]),
        (json.dumps(item_doc(author="李娜")), "application/json", ["body", "author"]),
        (json.dumps(item_doc(author=None, colour="red")), "application/json", ["body", "colour"]),
        ('{"title": ', "application/json", ["body", "(document)"]),
        ("[1, 2]", "application/json", ["body", "(document)"]),
        ("", "application/json", ["body", "(document)"]),
        ("title: [unclosed", "application/yaml", ["body", "(document)"]),
        (
            yaml.safe_dump(item_doc(author=None, kind="rumour"), allow_unicode=True),
            "application/yaml",
            ["body", "kind"],
        ),
        ("<alert><nonsense/></alert>", "application/cap+xml", None),
    ],
)
def test_a_bad_item_body_is_a_422_naming_the_field(
    api: Api, body: str, content_type: str, field: list[str] | None
) -> None:
    before = api.events()
    answer = api.call(
        "POST", "/api/v1/items", "作者", data=body.encode(), headers={"Content-Type": content_type}
    )
    assert answer.status_code == 422, answer.text
    if field is not None:
        assert field in fields(answer), answer.text
    assert all(problem["msg"] for problem in answer.json()["detail"])
    assert api.events() == before


def test_a_bad_small_body_is_a_422_naming_the_field(api: Api) -> None:
    item_id = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None)).json()["id"]
    no_reason = api.call("POST", f"/api/v1/items/{item_id}/reject", "审核一", json={})
    assert no_reason.status_code == 422
    assert ["body", "reason"] in fields(no_reason)
    wrong_type = api.call("POST", "/api/v1/deliveries/redrive", "运维", json={"item": "first"})
    assert ["body", "item"] in fields(wrong_type)
    malformed = api.call(
        "POST",
        f"/api/v1/items/{item_id}/reject",
        "审核一",
        data=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert api.call("GET", "/api/v1/items?limit=0", "审计").status_code == 422
    assert api.call("GET", f"/api/v1/items/{2**70}", "审计").status_code == 422


def test_a_body_of_another_type_is_a_415(api: Api) -> None:
    answer = api.call(
        "POST", "/api/v1/items", "作者", data=b"title=x", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"]


def test_four_eyes_hold_over_http(api: Api) -> None:
    """The author may not approve their own item, even holding the approver role; a severe warning
    needs two different approvers, and one of them twice is refused."""
    own = api.call("POST", "/api/v1/items", "全能", json=item_doc(author=None)).json()["id"]
    refused = api.call("POST", f"/api/v1/items/{own}/approve", "全能")
    assert refused.status_code == 409
    assert "another person must approve it" in refused.json()["detail"]
    assert api.call("GET", f"/api/v1/items/{own}", "审计").json()["state"] == "submitted"

    severe = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None, severity="Severe")).json()[
        "id"
    ]
    first = api.call("POST", f"/api/v1/items/{severe}/approve", "审核一")
    assert first.json()["state"] == "awaiting"
    assert first.json()["awaiting"] == 1
    again = api.call("POST", f"/api/v1/items/{severe}/approve", "审核一")
    assert again.status_code == 409
    second = api.call("POST", f"/api/v1/items/{severe}/approve", "审核二")
    assert second.status_code == 200, second.text
    assert second.json()["state"] == "approved"
    assert second.json()["approvers"] == ["审核一", "审核二"]
    assert sum(second.json()["deliveries"].values()) > 0
    assert api.call("GET", f"/api/v1/items/{severe}", "审计").json()["state"] == "approved"


def test_reject_retract_and_update_act_as_the_caller(api: Api) -> None:
    item_id = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None)).json()["id"]
    assert (
        api.call("POST", f"/api/v1/items/{item_id}/reject", "审核一", json={"reason": "错字"}).status_code
        == 200
    )
    revised = api.call(
        "POST", f"/api/v1/items/{item_id}/revisions", "作者", json=item_doc(author=None, body="更正。")
    )
    assert revised.status_code == 201, revised.text
    assert revised.json()["revision"] == 2
    assert api.call("POST", f"/api/v1/items/{item_id}/approve", "审核二").status_code == 200
    withdrawn = api.call("POST", f"/api/v1/items/{item_id}/retract", "审核一", json={"reason": "误发"})
    assert withdrawn.json()["state"] == "withdrawn"
    report = api.call("GET", f"/api/v1/items/{item_id}", "作者").json()
    assert report["withdrawn"]["by"] == "审核一"
    assert [r["state"] for r in report["revisions"]][0] == "rejected"


def test_previews_of_stored_and_unsaved_items(api: Api) -> None:
    unsaved = api.call("POST", "/api/v1/preview?channel=website", "运维", json=item_doc(author=None))
    assert unsaved.status_code == 200, unsaved.text
    assert {p["channel"] for p in unsaved.json()["payloads"]} == {"website"}
    item_id = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None)).json()["id"]
    stored = api.call("GET", f"/api/v1/items/{item_id}/preview", "运维").json()
    assert {p["channel"] for p in stored["payloads"]} >= {"website", "sms"}
    unknown = api.call("GET", f"/api/v1/items/{item_id}/preview?channel=webiste", "运维")
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["query", "channel"]
    assert "did you mean 'website'" in unknown.json()["detail"][0]["msg"]
    page = api.call("GET", "/api/v1/items?limit=1", "运维").json()
    assert [i["id"] for i in page["items"]] == [item_id]


def test_the_openapi_document_describes_items_and_the_bearer_scheme(api: Api) -> None:
    document = api.call("GET", "/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "enum" in schemas["Severity"] or "$ref" in str(schemas["Item"]["properties"]["severity"])
    assert "severity" in schemas["Item"]["properties"]
    assert "cadences" in schemas["Rota"]["properties"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    submit = document["paths"]["/api/v1/items"]["post"]
    assert set(submit["requestBody"]["content"]) == {
        "application/json",
        "application/yaml",
        "application/cap+xml",
    }
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    assert submit["security"] == [{"HTTPBearer": []}]
