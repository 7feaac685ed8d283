"""An emulator of the WordPress REST API's posts endpoints (``/wp-json/wp/v2/posts``).

As WordPress does: HTTP Basic with an Application Password (spaces in it are optional); errors as
``{"code", "message", "data": {"status"}}``; a slug already taken gets ``-2``, ``-3`` appended;
``status=any`` and ``context=edit`` need a logged-in user; ``DELETE`` moves a post to the trash and
a second ``DELETE`` answers 410 ``rest_already_trashed``; ``?force=true`` deletes for good. Only
registered meta keys (``dispatch_uid``) are stored; ``search`` matches title, content and excerpt as
WordPress's ``LIKE`` search does; categories must exist (``CATEGORIES``).
"""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

from sandbox.emulator import EmulatorState, emulator_app

REGISTERED_META = ("dispatch_uid",)
CATEGORIES = {1: "未分类", 2: "预警信息", 3: "安全提示", 4: "政策文件", 5: "政策解读"}
STATUSES = ("publish", "future", "draft", "pending", "private", "trash")


def _error(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify({"code": code, "message": message, "data": {"status": status}}), status


def create_app(
    username: str = "dispatch", app_password: str = "sand box pass word", public_url: str = ""
) -> tuple[Flask, EmulatorState]:
    app, state = emulator_app(
        "wordpress",
        lambda status: jsonify(
            {
                "code": "internal_server_error" if status >= 500 else "rest_too_many_requests",
                "message": "Injected failure.",
                "data": {"status": status},
            }
        ),
    )
    posts: dict[int, dict[str, Any]] = {}
    ids = itertools.count(101)
    password = app_password.replace(" ", "")

    def user() -> str | None | bool:
        """The logged-in user, None when anonymous, False when the credentials are wrong."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            name, _, given = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return name if (name, given.replace(" ", "")) == (username, password) else False

    def link(post: dict[str, Any]) -> str:
        base = (public_url or request.host_url).rstrip("/")
        return f"{base}/{post['slug']}/" if post["status"] == "publish" else f"{base}/?p={post['id']}"

    def unique_slug(slug: str, own_id: int | None) -> str:
        taken = {p["slug"] for p in posts.values() if p["id"] != own_id}
        candidate, n = slug, 2
        while candidate in taken:
            candidate, n = f"{slug}-{n}", n + 1
        return candidate

    def view(post: dict[str, Any], edit: bool) -> dict[str, Any]:
        out = {
            "id": post["id"],
            "date": post["date"],
            "date_gmt": post["date"],
            "modified": post["modified"],
            "slug": post["slug"],
            "status": post["status"],
            "type": "post",
            "link": link(post),
            "title": {"rendered": post["title"]},
            "content": {"rendered": post["content"], "protected": False},
            "excerpt": {"rendered": post["excerpt"], "protected": False},
            "categories": post.get("categories") or [1],
        }
        if edit:
            out["title"]["raw"] = post["title"]
            out["content"]["raw"] = post["content"]
            out["excerpt"]["raw"] = post["excerpt"]
            out["meta"] = dict(post["meta"])
        return out

    def guard(action: str) -> tuple[Response, int] | None:
        who = user()
        if who is False:
            return _error(
                "incorrect_password", "The provided password is an invalid application password.", 401
            )
        if who is None:
            return _error(
                f"rest_cannot_{action}", f"Sorry, you are not allowed to {action} posts as this user.", 401
            )
        return None

    def write(post: dict[str, Any], data: dict[str, Any]) -> tuple[Response, int] | None:
        status = data.get("status", post.get("status", "draft"))
        if status not in STATUSES:
            return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
        for field in ("title", "content", "excerpt"):
            if field in data:
                value = data[field]
                post[field] = value.get("raw", "") if isinstance(value, dict) else str(value)
        post["status"] = status
        if "categories" in data:
            unknown = [c for c in data["categories"] if c not in CATEGORIES]
            if unknown:
                return _error("rest_invalid_param", "Invalid parameter(s): categories", 400)
            post["categories"] = list(data["categories"])
        if "slug" in data:
            post["slug"] = unique_slug(str(data["slug"]), post.get("id"))
        meta = data.get("meta") or {}
        post["meta"].update({k: v for k, v in meta.items() if k in REGISTERED_META})
        post["modified"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return None

    @app.get("/wp-json/")
    def index() -> Response:
        return jsonify(
            {
                "name": "Sandbox WordPress",
                "namespaces": ["wp/v2"],
                "authentication": {"application-passwords": {}},
            }
        )

    @app.get("/wp-json/wp/v2/users/me")
    def me() -> Any:
        who = user()
        if not who:
            return _error("rest_not_logged_in", "You are not currently logged in.", 401)
        return jsonify({"id": 1, "name": who, "slug": who})

    @app.post("/wp-json/wp/v2/posts")
    def create() -> Any:
        refused = guard("create")
        if refused:
            return refused
        data = request.get_json(silent=True) or {}
        if not any(data.get(f) for f in ("title", "content", "excerpt")):
            return _error("empty_content", "Content, title, and excerpt are empty.", 400)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        post: dict[str, Any] = {
            "id": next(ids),
            "date": now,
            "title": "",
            "content": "",
            "excerpt": "",
            "slug": "",
            "status": "draft",
            "meta": {},
        }
        bad = write(post, data)
        if bad:
            return bad
        if not post["slug"]:
            post["slug"] = unique_slug(f"post-{post['id']}", post["id"])
        posts[post["id"]] = post
        state.keep({"method": "POST", "path": request.path, "post_id": post["id"], "body": data})
        return jsonify(view(post, True)), 201

    @app.route("/wp-json/wp/v2/posts/<int:post_id>", methods=["POST", "PUT", "PATCH"])
    def update(post_id: int) -> Any:
        refused = guard("edit")
        if refused:
            return refused
        post = posts.get(post_id)
        if post is None:
            return _error("rest_post_invalid_id", "Invalid post ID.", 404)
        data = request.get_json(silent=True) or {}
        bad = write(post, data)
        if bad:
            return bad
        state.keep({"method": request.method, "path": request.path, "post_id": post_id, "body": data})
        return jsonify(view(post, True))

    @app.get("/wp-json/wp/v2/posts")
    def listing() -> Any:
        wanted = request.args.get("status", "publish")
        edit = request.args.get("context") == "edit"
        if (wanted != "publish" or edit) and not user():
            if edit:
                return _error(
                    "rest_forbidden_context",
                    "Sorry, you are not allowed to edit posts in this post type.",
                    401,
                )
            return _error("rest_invalid_param", "Invalid parameter(s): status", 400)
        slugs = set(filter(None, request.args.get("slug", "").split(",")))
        search = request.args.get("search", "")
        found = [
            view(p, edit)
            for p in posts.values()
            if (wanted == "any" and p["status"] != "trash" or p["status"] == wanted)
            and (not slugs or p["slug"] in slugs)
            and (not search or any(search in p[f] for f in ("title", "content", "excerpt")))
        ]
        return jsonify(found)

    @app.get("/wp-json/wp/v2/posts/<int:post_id>")
    def show(post_id: int) -> Any:
        post = posts.get(post_id)
        if post is None or (post["status"] != "publish" and not user()):
            return _error("rest_post_invalid_id", "Invalid post ID.", 404)
        return jsonify(view(post, request.args.get("context") == "edit"))

    @app.delete("/wp-json/wp/v2/posts/<int:post_id>")
    def trash(post_id: int) -> Any:
        refused = guard("delete")
        if refused:
            return refused
        post = posts.get(post_id)
        if post is None:
            return _error("rest_post_invalid_id", "Invalid post ID.", 404)
        state.keep({"method": "DELETE", "path": request.path, "post_id": post_id, "body": dict(request.args)})
        if request.args.get("force") in ("true", "1"):
            del posts[post_id]
            return jsonify({"deleted": True, "previous": view(post, True)})
        if post["status"] == "trash":
            return _error("rest_already_trashed", "The post has already been deleted.", 410)
        post["status"] = "trash"
        return jsonify(view(post, True))

    @app.get("/_sandbox/posts")
    def all_posts() -> Response:
        return jsonify([view(p, True) for p in posts.values()])

    return app, state
