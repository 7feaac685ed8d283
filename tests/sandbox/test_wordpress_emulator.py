"""The WordPress emulator answers as a stock WordPress 6.1 site does (see sandbox/wordpress.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask.testing import FlaskClient

from sandbox import wordpress

POSTS = "/wp-json/wp/v2/posts"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AUTH = basic("dispatch", "sand box pass word")


def client(**options: Any) -> FlaskClient:
    return wordpress.create_app(**options)[0].test_client()


def create(site: FlaskClient, **body: Any) -> dict[str, Any]:
    response = site.post(POSTS, json=body, headers=AUTH)
    assert response.status_code == 201, response.json
    return response.json


# ---------------------------------------------------------------- posts


def test_create_answers_201_in_the_edit_context_with_a_location() -> None:
    site = client()
    response = site.post(
        POSTS, json={"title": "Notice", "content": "Body", "status": "publish"}, headers=AUTH
    )
    assert response.status_code == 201
    post = response.json
    assert response.headers["Location"] == f"http://localhost{POSTS}/{post['id']}"
    assert post["title"] == {"raw": "Notice", "rendered": "Notice"}
    assert post["content"]["raw"] == "Body" and post["content"]["rendered"] == "<p>Body</p>\n"
    assert (post["status"], post["slug"], post["type"]) == ("publish", "notice", "post")


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"title": "T", "content": "C", "excerpt": "E"}, ("T", "C", "E")),
        ({"title": {"raw": "T"}, "content": {"raw": "C"}, "excerpt": {"raw": "E"}}, ("T", "C", "E")),
        ({"title": "  padded  ", "content": "C"}, ("padded", "C", "")),  # title_save_pre trims
    ],
)
def test_title_content_and_excerpt_are_strings_or_raw_objects(sent: dict[str, Any], stored: tuple) -> None:
    post = create(client(), **sent)
    assert (post["title"]["raw"], post["content"]["raw"], post["excerpt"]["raw"]) == stored


def test_an_empty_raw_title_is_ignored_on_update_but_an_empty_raw_content_is_kept() -> None:
    site = client()
    post = create(site, title="T", content="C")
    updated = site.post(
        f"{POSTS}/{post['id']}", json={"title": {"raw": ""}, "content": {"raw": ""}}, headers=AUTH
    )
    assert (updated.json["title"]["raw"], updated.json["content"]["raw"]) == ("T", "")


def test_the_view_context_has_no_raw_fields_and_visitors_cannot_ask_for_edit() -> None:
    site = client()
    post = create(site, title="T", content="C", status="publish")
    public = site.get(f"{POSTS}/{post['id']}").json
    assert public["title"] == {"rendered": "T"} and "raw" not in public["content"]
    edit = site.get(f"{POSTS}/{post['id']}?context=edit")
    assert (edit.status_code, edit.json["code"]) == (401, "rest_forbidden_context")
    assert edit.json["message"] == "Sorry, you are not allowed to edit this post."


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_every_editable_method_updates(method: str) -> None:
    site = client()
    post = create(site, title="T")
    response = site.open(f"{POSTS}/{post['id']}", method=method, json={"title": "New"}, headers=AUTH)
    assert response.status_code == 200 and response.json["title"]["raw"] == "New"


def test_delete_trashes_then_410_then_force_deletes() -> None:
    site = client()
    post = create(site, title="T", status="publish")
    trashed = site.delete(f"{POSTS}/{post['id']}", headers=AUTH)
    assert (trashed.status_code, trashed.json["status"]) == (200, "trash")
    again = site.delete(f"{POSTS}/{post['id']}", headers=AUTH)
    assert again.json == {
        "code": "rest_already_trashed",
        "message": "The post has already been deleted.",
        "data": {"status": 410},
    }
    assert again.status_code == 410
    gone = site.delete(f"{POSTS}/{post['id']}?force=true", headers=AUTH)
    assert gone.json["deleted"] is True and gone.json["previous"]["id"] == post["id"]
    missing = site.get(f"{POSTS}/{post['id']}", headers=AUTH)
    assert (missing.status_code, missing.json["code"]) == (404, "rest_post_invalid_id")


def test_create_without_title_content_or_excerpt_is_empty_content() -> None:
    response = client().post(POSTS, json={"status": "draft"}, headers=AUTH)
    assert (response.status_code, response.json["code"]) == (400, "empty_content")
    assert response.json["message"] == "Content, title, and excerpt are empty."


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/wp-json/wp/v2/nothing", 404, "rest_no_route"),
        ("DELETE", POSTS, 404, "rest_no_route"),  # a known route with another method is no route
        ("GET", f"{POSTS}/999", 404, "rest_post_invalid_id"),
    ],
)
def test_unknown_routes_and_posts(method: str, path: str, status: int, code: str) -> None:
    response = client().open(path, method=method, headers=AUTH)
    assert (response.status_code, response.json["code"]) == (status, code)


def test_a_broken_json_body_is_rest_invalid_json() -> None:
    response = client().post(POSTS, data="{nope", content_type="application/json", headers=AUTH)
    assert (response.status_code, response.json["code"]) == (400, "rest_invalid_json")


def test_method_override_by_query_parameter() -> None:
    site = client()
    post = create(site, title="T")
    response = site.post(f"{POSTS}/{post['id']}?_method=DELETE", headers=AUTH)
    assert response.json["status"] == "trash"


def test_rest_route_reaches_the_same_api() -> None:
    site = client()
    create(site, title="T", status="publish")
    assert len(site.get("/?rest_route=/wp/v2/posts").json) == 1


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        (basic("dispatch", "sandboxpassword"), 201, None),  # the spaces are optional
        (basic("dispatch", "SAND-BOX pass word"), 401, "incorrect_password"),  # but case matters
        (basic("dispatch", "wrong"), 401, "incorrect_password"),
        (basic("nobody", "sand box pass word"), 401, "invalid_username"),
        ({"Authorization": "Basic not-base64!"}, 401, "rest_cannot_create"),  # no PHP_AUTH_USER: a visitor
        ({}, 401, "rest_cannot_create"),
    ],
)
def test_application_passwords(headers: dict[str, str], status: int, code: str | None) -> None:
    response = client().post(POSTS, json={"title": "T"}, headers=headers)
    assert response.status_code == status
    assert response.json.get("code") == code


def test_a_wrong_password_is_refused_on_every_route_before_routing() -> None:
    response = client().get("/wp-json/", headers=basic("dispatch", "wrong"))
    assert (response.status_code, response.json["code"]) == (401, "incorrect_password")
    assert response.json["message"] == "The provided password is an invalid application password."


def test_without_application_passwords_the_credentials_are_ignored() -> None:
    site = client(app_passwords_available=False)
    for headers in (AUTH, basic("dispatch", "wrong")):
        me = site.get("/wp-json/wp/v2/users/me", headers=headers)
        assert (me.status_code, me.json["code"]) == (401, "rest_not_logged_in")
        # The source validates and sanitizes before it checks permissions, but a create's status is
        # only checked against the enum: a visitor's create is refused by the permission check...
        created = site.post(POSTS, json={"title": "T", "status": "publish"}, headers=headers)
        assert (created.status_code, created.json["code"]) == (401, "rest_cannot_create")
        # ...while a listing with a status other than publish fails sanitizing: "Status is forbidden.".
        listed = site.get(f"{POSTS}?status=any&slug=t", headers=headers)
        assert listed.status_code == 400
        assert listed.json["message"] == "Invalid parameter(s): status"
        assert listed.json["data"]["params"] == {"status": "Status is forbidden."}
        assert listed.json["data"]["details"]["status"] == {
            "code": "rest_forbidden_status",
            "message": "Status is forbidden.",
            "data": {"status": 401},
        }


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("status=draft", 400, "rest_invalid_param"),
        ("status[]=publish&status[]=private", 400, "rest_invalid_param"),
        ("status=any&context=edit", 400, "rest_invalid_param"),  # sanitizing comes before permissions
        ("context=edit", 401, "rest_forbidden_context"),
        ("status=publish", 200, None),
        ("status=bogus", 400, "rest_invalid_param"),
    ],
)
def test_what_a_visitor_may_list(query: str, status: int, code: str | None) -> None:
    response = client().get(f"{POSTS}?{query}")
    assert response.status_code == status
    if code:
        assert response.json["code"] == code


def test_validation_comes_before_permission_on_create() -> None:
    response = client().post(POSTS, json={"title": "T", "status": "bogus"})
    assert (response.status_code, response.json["code"]) == (400, "rest_invalid_param")
    assert (
        response.json["data"]["params"]["status"]
        == "status is not one of publish, future, draft, pending, private."
    )


def test_users_me() -> None:
    site = client()
    assert site.get("/wp-json/wp/v2/users/me", headers=AUTH).json["slug"] == "dispatch"
    anonymous = site.get("/wp-json/wp/v2/users/me")
    assert anonymous.json == {
        "code": "rest_not_logged_in",
        "message": "You are not currently logged in.",
        "data": {"status": 401},
    }


def test_a_visitor_cannot_read_a_draft() -> None:
    site = client()
    post = create(site, title="T")
    response = site.get(f"{POSTS}/{post['id']}")
    assert (response.status_code, response.json["code"]) == (401, "rest_forbidden")


# ---------------------------------------------------------------- meta


def test_unregistered_meta_is_dropped_silently_on_a_stock_site() -> None:
    site = client()
    post = create(site, title="T", meta={"dispatch_uid": "u1"})
    assert post["meta"] == []  # PHP's empty array
    assert site.get("/_sandbox/posts").json[0]["meta"] == {}


def test_registered_meta_is_kept_and_typed() -> None:
    site = client(registered_meta=("dispatch_uid",))
    post = create(site, title="T", meta={"dispatch_uid": "u1", "other": "x"})
    assert post["meta"] == {"dispatch_uid": "u1"}
    assert create(site, title="U")["meta"] == {"dispatch_uid": ""}  # the registered default
    wrong = site.post(f"{POSTS}/{post['id']}", json={"meta": {"dispatch_uid": 5}}, headers=AUTH)
    assert (wrong.status_code, wrong.json["code"]) == (400, "rest_invalid_type")
    assert wrong.json["message"] == "meta.dispatch_uid is not of type string."


def test_meta_must_be_an_object() -> None:
    response = client().post(POSTS, json={"title": "T", "meta": "x"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json["data"]["params"] == {"meta": "Invalid parameter."}


# ---------------------------------------------------------------- search and listing


def seeded() -> tuple[FlaskClient, dict[str, int]]:
    site = client()
    ids = {
        "marked": create(
            site, title="Road closed", content="Detour <!-- uid:abc-123 --> ahead", status="publish"
        )["id"],
        "draft": create(site, title="Flood warning", content="Stay home", status="draft")["id"],
        "trashed": create(site, title="Old road notice", content="gone", status="publish")["id"],
    }
    site.delete(f"{POSTS}/{ids['trashed']}", headers=AUTH)
    return site, ids


@pytest.mark.parametrize(
    ("search", "found"),
    [
        ("uid:abc-123", ["marked"]),  # an HTML comment in the raw content is searched
        ("UID:ABC", ["marked"]),  # case-insensitive
        ("road detour", ["marked"]),  # every term must match somewhere
        ('"road closed"', ["marked"]),  # a quoted phrase stays one term
        ("road -detour", []),  # "-term" excludes
        ("flood", ["draft"]),
        ("<!-- uid:abc-123 -->", ["marked", "draft"]),  # sanitize_text_field strips it: no search at all
    ],
)
def test_search(search: str, found: list[str]) -> None:
    site, ids = seeded()
    response = site.get(POSTS, query_string={"search": search, "status": "any"}, headers=AUTH)
    assert sorted(p["id"] for p in response.json) == sorted(ids[name] for name in found)


@pytest.mark.parametrize(
    ("status", "found"),
    [
        ({}, ["marked"]),
        ({"status": "any"}, ["marked", "draft"]),
        ({"status": "draft,trash"}, ["draft", "trashed"]),
        ({"status[]": ["any", "trash"]}, ["marked", "draft", "trashed"]),
        ({"status": "trash"}, ["trashed"]),
    ],
)
def test_status_filters(status: dict[str, Any], found: list[str]) -> None:
    site, ids = seeded()
    response = site.get(POSTS, query_string=status, headers=AUTH)
    assert sorted(p["id"] for p in response.json) == sorted(ids[name] for name in found)


def test_paging_headers_and_limits() -> None:
    site = client()
    for number in range(12):
        create(site, title=f"post {number}", status="publish")
    first = site.get(POSTS)
    assert len(first.json) == 10  # per_page defaults to 10
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("12", "2")
    assert 'rel="next"' in first.headers["Link"]
    second = site.get(f"{POSTS}?per_page=5&page=3")
    assert len(second.json) == 2 and second.headers["X-WP-TotalPages"] == "3"
    beyond = site.get(f"{POSTS}?page=4&per_page=5")
    assert (beyond.status_code, beyond.json["code"]) == (400, "rest_post_invalid_page_number")
    too_many = site.get(f"{POSTS}?per_page=101")
    assert (
        too_many.json["data"]["params"]["per_page"]
        == "per_page must be between 1 (inclusive) and 100 (inclusive)"
    )


def test_order_by_date_newest_first_or_ascending() -> None:
    site = client()
    ids = [create(site, title=f"p{n}", status="publish")["id"] for n in range(3)]
    assert [p["id"] for p in site.get(POSTS).json] == ids[::-1]
    assert [p["id"] for p in site.get(f"{POSTS}?order=asc&orderby=date").json] == ids


def test_slug_filter_takes_a_list_and_unencoded_unicode() -> None:
    site = client()
    a = create(site, title="预警", status="publish")
    b = create(site, title="b", status="publish")
    create(site, title="c", status="publish")
    assert a["slug"] == "%e9%a2%84%e8%ad%a6"  # WordPress keeps non-ASCII slugs percent-encoded
    found = site.get(POSTS, query_string={"slug": "预警,b"}).json
    assert sorted(p["id"] for p in found) == sorted([a["id"], b["id"]])


# ---------------------------------------------------------------- slugs


def test_a_taken_slug_gets_a_number() -> None:
    site = client()
    slugs = [create(site, title="T", slug="notice", status="publish")["slug"] for _ in range(3)]
    assert slugs == ["notice", "notice-2", "notice-3"]


@pytest.mark.parametrize(
    ("slug", "expected"),
    [("feed", "feed-2"), ("embed", "embed-2"), ("2024", "2024-2"), ("Hello World!", "hello-world")],
)
def test_reserved_and_sanitized_slugs(slug: str, expected: str) -> None:
    assert create(client(), title="T", slug=slug, status="publish")["slug"] == expected


def test_drafts_without_a_given_status_keep_a_duplicate_slug_until_published() -> None:
    site = client()
    create(site, title="T", slug="notice", status="publish")
    draft = create(site, title="T", slug="notice")  # no status: the default draft is exempt
    assert draft["slug"] == "notice" and draft["link"].endswith(f"?p={draft['id']}")
    explicit = create(site, title="T", slug="notice", status="draft")  # the controller makes this unique
    assert explicit["slug"] == "notice-2"
    published = site.post(f"{POSTS}/{draft['id']}", json={"status": "publish"}, headers=AUTH).json
    assert published["slug"] == "notice-3"


def test_a_draft_without_slug_has_none_and_gets_one_from_its_title_when_published() -> None:
    site = client()
    draft = create(site, title="Road Works")
    assert draft["slug"] == ""
    published = site.post(f"{POSTS}/{draft['id']}", json={"status": "publish"}, headers=AUTH).json
    assert published["slug"] == "road-works"


def test_trash_renames_the_slug_and_untrash_gives_it_back() -> None:
    site = client()
    post = create(site, title="T", slug="notice", status="publish")
    trashed = site.delete(f"{POSTS}/{post['id']}", headers=AUTH).json
    assert trashed["slug"] == "notice__trashed"
    assert create(site, title="T", slug="notice", status="publish")["slug"] == "notice"  # the slug is free
    restored = site.post(f"{POSTS}/{post['id']}", json={"status": "publish"}, headers=AUTH).json
    assert restored["slug"] == "notice-2"  # its old slug is taken now


def test_untrash_restores_a_free_slug() -> None:
    site = client()
    post = create(site, title="T", slug="notice", status="publish")
    site.delete(f"{POSTS}/{post['id']}", headers=AUTH)
    restored = site.post(f"{POSTS}/{post['id']}", json={"status": "draft"}, headers=AUTH).json
    assert (restored["slug"], restored["status"]) == ("notice", "draft")


# ---------------------------------------------------------------- permalinks


@pytest.mark.parametrize(
    ("structure", "expected"),
    [
        ("/%postname%/", "http://localhost/notice/"),
        ("", "http://localhost/?p={id}"),
        ("/%year%/%monthnum%/%day%/%postname%/", "http://localhost/{date}/notice/"),
        ("/archives/%post_id%", "http://localhost/archives/{id}"),
    ],
)
def test_permalink_structures(structure: str, expected: str) -> None:
    post = create(client(permalink_structure=structure), title="T", slug="notice", status="publish")
    date = post["date"][:10].replace("-", "/")
    assert post["link"] == expected.format(id=post["id"], date=date)


def test_unpublished_posts_have_plain_links_on_the_public_url() -> None:
    site = client(public_url="https://news.example.org/")
    draft = create(site, title="T", slug="notice", status="draft")
    assert draft["link"] == f"https://news.example.org/?p={draft['id']}"
    published = create(site, title="T", slug="other", status="publish")
    assert published["link"] == "https://news.example.org/other/"


# ---------------------------------------------------------------- categories


def test_categories_listing() -> None:
    site = client()
    create(site, title="T", status="publish", categories=[2])
    create(site, title="U", status="draft", categories=[2])
    listed = site.get("/wp-json/wp/v2/categories?per_page=100").json
    assert {c["id"]: c["name"] for c in listed} == wordpress.DEFAULT_CATEGORIES
    warnings = next(c for c in listed if c["id"] == 2)
    assert (warnings["count"], warnings["parent"], warnings["taxonomy"]) == (
        1,
        0,
        "category",
    )  # published only
    page = site.get("/wp-json/wp/v2/categories?per_page=2&page=2&orderby=id")
    assert [c["id"] for c in page.json] == [3, 4] and page.headers["X-WP-TotalPages"] == "3"
    assert [c["id"] for c in site.get("/wp-json/wp/v2/categories?include=5,1&orderby=id").json] == [1, 5]
    assert next(c for c in listed if c["id"] == 1)["slug"] == "uncategorized"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (None, [1]),  # wp_insert_post gives the default category
        ([2, 99], [2]),  # an unknown ID is skipped silently
        ([99], []),  # all unknown: no category at all, and no error
        ([], []),
    ],
)
def test_categories_on_write(sent: list[int] | None, kept: list[int]) -> None:
    body: dict[str, Any] = {"title": "T"} if sent is None else {"title": "T", "categories": sent}
    response = client().post(POSTS, json=body, headers=AUTH)
    assert response.status_code == 201 and response.json["categories"] == kept


def test_a_post_left_without_category_gets_the_default_back_on_its_next_update() -> None:
    site = client()
    post = create(site, title="T", categories=[99])
    assert site.post(f"{POSTS}/{post['id']}", json={"title": "U"}, headers=AUTH).json["categories"] == [1]


# ---------------------------------------------------------------- stored as sent, index, record


def test_an_administrators_html_is_stored_as_sent() -> None:
    html = '<script>alert(1)</script><iframe src="x"></iframe><!-- uid:1 -->'
    site = client()
    post = create(site, title="<b>T</b>", content=html, excerpt="<em>E</em>")
    stored = site.get("/_sandbox/posts").json[0]
    assert (stored["title"]["raw"], stored["content"]["raw"], stored["excerpt"]["raw"]) == (
        "<b>T</b>",
        html,
        "<em>E</em>",
    )
    assert stored["id"] == post["id"]


def test_sandbox_posts_lists_the_trash_too() -> None:
    site, ids = seeded()
    listed = {p["id"]: p for p in site.get("/_sandbox/posts").json}
    assert set(listed) == set(ids.values())
    assert listed[ids["trashed"]]["status"] == "trash" and "link" in listed[ids["trashed"]]


@pytest.mark.parametrize(("available", "authentication"), [(True, ["application-passwords"]), (False, [])])
def test_index(available: bool, authentication: list[str]) -> None:
    index = client(app_passwords_available=available).get("/wp-json/").json
    assert index["name"] == "Sandbox WordPress" and "wp/v2" in index["namespaces"]
    assert list(index["authentication"]) == authentication


def test_the_record_keeps_accepted_writes_only() -> None:
    app, state = wordpress.create_app()
    site = app.test_client()
    post = site.post(POSTS, json={"title": "T"}, headers=AUTH).json
    site.post(POSTS, json={"title": "T"})  # refused: not recorded
    site.post(f"{POSTS}/{post['id']}", json={"title": "U"}, headers=AUTH)
    site.delete(f"{POSTS}/{post['id']}?force=true", headers=AUTH)
    entries = [(e["method"], e["post_id"], e["body"]) for e in state.received]
    assert entries == [
        ("POST", post["id"], {"title": "T"}),
        ("POST", post["id"], {"title": "U"}),
        ("DELETE", post["id"], {"force": "true"}),
    ]


# ---------------------------------------------------------------- discovery


def test_options_describes_the_route_and_allows_what_the_caller_may_do() -> None:
    site = client()
    assert site.options(POSTS).headers["Allow"] == "GET"
    assert site.options(POSTS, headers=AUTH).headers["Allow"] == "GET, POST"
    unknown = site.options("/wp-json/wp/v2/nothing", headers=AUTH)
    assert (unknown.status_code, unknown.json) == (200, [])


def test_fields_keeps_only_the_named_fields() -> None:
    site = client()
    create(site, title="T", status="publish")
    listed = site.get(f"{POSTS}?_fields=id,title.rendered,content.protected").json
    assert list(listed[0]) == ["id", "title", "content"]
    assert listed[0]["title"] == {"rendered": "T"} and listed[0]["content"] == {"protected": False}


def test_users_me_in_the_edit_context_names_the_role() -> None:
    me = client().get("/wp-json/wp/v2/users/me?context=edit", headers=AUTH).json
    assert me["roles"] == ["administrator"] and me["capabilities"]["unfiltered_html"] is True


def test_the_namespace_index_lists_the_routes() -> None:
    index = client().get("/wp-json/wp/v2").json
    assert index["namespace"] == "wp/v2" and "/wp/v2/posts" in index["routes"]
