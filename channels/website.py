"""The website, as posts on a WordPress site through its REST API.

Speaks: ``/wp-json/wp/v2/posts`` (create: ``POST /posts``, update: ``POST /posts/<id>``, trash:
``DELETE /posts/<id>``) and ``/wp-json/wp/v2/categories``, authenticated with an Application Password
over HTTP Basic — see https://developer.wordpress.org/rest-api/reference/posts/ and
https://make.wordpress.org/core/2020/11/05/application-passwords-integration-guide/.
Errors come as ``{"code": "rest_…", "message": …, "data": {"status": …}}``.

What a stock WordPress does that shapes this adapter (WordPress 6.1, no plugins):

- **Title and excerpt are HTML.** Accounts holding ``unfiltered_html`` (editors, administrators) keep
  whatever markup is sent, so every text of the item is escaped here; the content comes from an
  autoescaped template.
- **Unregistered post meta is dropped without a word** (``WP_REST_Meta_Fields`` writes registered keys
  only). The post's identity therefore travels in its content, as the comment
  ``<!-- dispatch:<uid> -->``, which WordPress's search reads (``LIKE`` over the raw content). The meta
  key ``dispatch_uid`` is sent too and used where a site registers it (see the README).
- **``status=any`` leaves out the trash**, so the lookup asks for every status by name.
- **A wrong login is not always a 401.** Where application passwords are unavailable (a site without
  HTTPS), the header is ignored and the request runs anonymously; WordPress checks parameters before
  permissions, so the answer is ``400 rest_invalid_param`` with "Status is forbidden." Both mean bad
  credentials: the delivery fails with that reason and a channel alert is raised.
- **Unknown category ids are skipped silently** (``wp_set_object_terms``): the catalogue is checked
  against ``/categories`` at probe and approval, and a post that came back without a category sent
  raises an alert.
- **A taken slug is renamed to ``-2``**, and the permalink follows the site's structure: other channels
  link to ``website.link`` built at approval, so approval checks that no other post holds the slug, and
  the permalink the site returns is kept in the ledger (an alert says when it differs from the link).
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

import requests

from channels.base import (
    Channel,
    ChannelError,
    Findings,
    Health,
    Payload,
    Publication,
    Receipt,
    Renderer,
    Target,
)
from dispatcher.errors import PermanentChannelError
from dispatcher.rendering import context_for
from settings import WebsiteSettings

# Every status a post can have, trash included: ``status=any`` excludes the trash (WP_Query).
ALL_STATUSES = "publish,future,draft,pending,private,trash"
# Answers that mean WordPress did not accept the login (or treated the request as anonymous).
CREDENTIAL_CODES = frozenset(
    {
        "incorrect_password",
        "invalid_username",
        "invalid_email",
        "rest_not_logged_in",
        "rest_cannot_create",
        "rest_cannot_edit",
        "rest_cannot_delete",
        "rest_forbidden_context",
        "rest_forbidden_status",
        "application_passwords_disabled",
    }
)


def marker(uid: str) -> str:
    """The comment that names the item inside its post's content."""
    return f"<!-- dispatch:{uid} -->"


def revision_marker(revision: int) -> str:
    """The comment that names the revision a post's content is: a lookup of a correction whose answer
    was lost finds the item's post whatever it holds, and only this says the correction landed."""
    return f"<!-- dispatch-revision:{revision} -->"


_REVISION = re.compile(r"<!-- dispatch-revision:([0-9]+) -->")


class WebsiteChannel(Channel):
    name = "website"
    can_update = True
    # A post that is already in the trash: retracting it again is done, not an error.
    already_trashed = "rest_already_trashed"

    def __init__(self, settings: WebsiteSettings, **kwargs: Any) -> None:
        super().__init__(timeout=settings.timeout, **kwargs)
        self.settings = settings
        self.http.auth = (settings.username, settings.app_password.get_secret_value())
        self.api = f"{settings.base_url.rstrip('/')}/wp-json/wp/v2"
        self.posts_url = f"{self.api}/posts"
        self._categories: tuple[float, set[int]] | None = None

    def provider_code(self, response: Any) -> str | None:
        return self.json_field(response, "code")

    def error_for(self, response: requests.Response) -> ChannelError:
        error = super().error_for(response)
        if error.code in CREDENTIAL_CODES or _anonymous(response):
            return PermanentChannelError(
                f"website: the site did not accept the login of {self.settings.username!r} "
                f"(HTTP {response.status_code} {error.code}): check the application password, and that "
                "the site offers application passwords (WordPress requires HTTPS for them)",
                code="credentials",
                alert=True,
            )
        return error

    def targets(self, publication: Publication) -> list[Target]:
        return [Target("site")]

    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        item = publication.item
        content = renderer.render(self.name, item.kind.value, context_for(publication))
        content += f"\n{marker(publication.uid)}\n{revision_marker(publication.revision)}"
        categories = list(self.settings.categories.get(item.kind.value, []))
        if item.interpretation and self.settings.interpretation_category:
            categories.append(self.settings.interpretation_category)
        return Payload(
            channel=self.name,
            target=target.name,
            body={
                # Title and excerpt are HTML fields: markup in an item is shown, never run.
                "title": html.escape(item.title),
                "content": content,
                "excerpt": html.escape(item.short),
                "slug": publication.slug,
                "status": self.settings.post_status,
                "categories": categories,
                "meta": {"dispatch_uid": publication.uid},
                # Not sent: the link other channels carry, compared with the permalink the site gives.
                "link": publication.link,
            },
        )

    def send(self, payload: Payload, key: str) -> Receipt:
        existing = self.find(payload)
        url = f"{self.posts_url}/{existing.provider_id}" if existing else self.posts_url
        fields = {name: value for name, value in payload.body.items() if name != "link"}
        post = self.request("POST", url, json=fields).json()
        problems = []
        dropped = sorted(set(fields["categories"]) - set(post.get("categories") or []))
        if dropped:
            problems.append(f"the site did not file the post under categories {dropped} (do they exist?)")
        link, expected = post.get("link"), payload.body.get("link")
        if post.get("status") == "publish" and link and expected and link != expected:
            problems.append(f"the post is at {link}, but other channels link to {expected}")
        detail: dict[str, Any] = {"link": link, "updated": existing is not None}
        if existing and existing.detail.get("duplicates"):
            detail["duplicates"] = existing.detail["duplicates"]
        return Receipt(
            provider_id=str(post["id"]),
            detail=detail,
            alert=f"website: {'; '.join(problems)}" if problems else None,
        )

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        """The post carrying this item's marker (or meta), whatever its status, trash included — if it
        holds this payload's revision: the item's post holding an earlier one means this one never
        landed."""
        found = self.find(payload)
        if found is None:
            return None
        wanted = _REVISION.search(payload.body.get("content", ""))
        held = _REVISION.search(found.detail.get("content", ""))
        # A post without the revision's mark (an editor rewrote it, or it predates the mark) is taken as
        # found, as before the mark existed.
        if wanted and held and held[1] != wanted[1]:
            return None
        return Receipt(found.provider_id, {k: v for k, v in found.detail.items() if k != "content"})

    def find(self, payload: Payload) -> Receipt | None:
        """The item's post, whatever revision it holds (``detail["content"]`` says)."""
        uid = payload.body["meta"]["dispatch_uid"]
        posts = self.request(
            "GET",
            self.posts_url,
            idempotent=True,
            params={
                "search": uid,
                "status": ALL_STATUSES,
                "context": "edit",
                "per_page": 100,
                "orderby": "id",
                "order": "asc",
            },
        ).json()
        ours = sorted((post for post in posts if _carries(post, uid)), key=lambda post: int(post["id"]))
        if not ours:
            return None
        first = ours[0]
        # Two posts for one item (a slow create that landed after its retry): the first is kept and
        # the core withdraws the others, on the record. Trashed copies are already withdrawn.
        extras = [str(post["id"]) for post in ours[1:] if post.get("status") != "trash"]
        content = first.get("content")
        raw = content.get("raw", "") if isinstance(content, dict) else str(content or "")
        detail: dict[str, Any] = {"link": first.get("link"), "status": first.get("status"), "content": raw}
        if extras:
            detail["duplicates"] = extras
        return Receipt(provider_id=str(first["id"]), detail=detail)

    @property
    def on_expiry(self) -> str:
        return {"notice": "mark", "draft": "withdraw", "keep": "keep"}[self.settings.on_expiry]

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        url = f"{self.posts_url}/{receipt.provider_id}"
        # An expired post goes to draft (on_expiry); a withdrawn one where retract_to says.
        if self.settings.retract_to == "draft" or payload.body.get("ending") == "expired":
            self.request("POST", url, idempotent=True, json={"status": "draft"})
            return
        try:
            self.request("DELETE", url, idempotent=True)
        except PermanentChannelError as exc:
            if exc.code != self.already_trashed:
                raise

    # -- what the site says before anything is sent ----------------------------------------------

    def site_categories(self) -> set[int]:
        """Category ids the site has (kept for a minute: approval asks on every item)."""
        if self._categories and time.monotonic() - self._categories[0] < 60:
            return self._categories[1]
        found: set[int] = set()
        for page in range(1, 20):
            response = self.request(
                "GET",
                f"{self.api}/categories",
                idempotent=True,
                params={"per_page": 100, "page": page, "_fields": "id"},
                timeout=min(self.timeout, 5.0),
            )
            found |= {int(category["id"]) for category in response.json()}
            if page >= int(response.headers.get("X-WP-TotalPages", "1") or 1):
                break
        self._categories = (time.monotonic(), found)
        return found

    def wanted_categories(self) -> set[int]:
        wanted = {c for ids in self.settings.categories.values() for c in ids}
        if self.settings.interpretation_category:
            wanted.add(self.settings.interpretation_category)
        return wanted

    def check(self, payloads: list[Payload]) -> Findings:
        findings = Findings()
        try:
            known = self.site_categories()
            for payload in payloads:
                missing = sorted(set(payload.body["categories"]) - known)
                if missing:
                    findings.problems.append(
                        f"website: categories {missing} of the disclosure catalogue do not exist on the "
                        "site (DISPATCH_WEBSITE__CATEGORIES)"
                    )
                slug = payload.body["slug"]
                holders = self.request(
                    "GET",
                    self.posts_url,
                    idempotent=True,
                    params={"slug": slug, "status": ALL_STATUSES, "context": "edit"},
                    timeout=min(self.timeout, 5.0),
                ).json()
                uid = payload.body["meta"]["dispatch_uid"]
                foreign = [post for post in holders if not _carries(post, uid)]
                if foreign:
                    findings.problems.append(
                        f"website: post {foreign[0]['id']} already has the slug {slug!r}; the links on "
                        "other channels would lead to it"
                    )
        except ChannelError as exc:
            findings.notes.append(f"website: the site could not be asked before approval ({exc})")
        return findings

    def probe(self) -> Health:
        started = time.monotonic()
        health = self.timed_probe(f"{self.api}/users/me", params={"context": "edit"})
        if not health.ok:
            return health
        try:
            missing = sorted(self.wanted_categories() - self.site_categories())
            lookup = self.lookup_mode()
        except ChannelError as exc:
            return Health(False, str(exc), (time.monotonic() - started) * 1000)
        latency = (time.monotonic() - started) * 1000
        if missing:
            return Health(False, f"categories {missing} do not exist on the site", latency)
        return Health(True, f"login accepted; lookup {lookup}", latency)

    def lookup_mode(self) -> str:
        """How reliably an earlier post can be found: by registered meta, or by the content marker."""
        response = self.request("OPTIONS", self.posts_url, idempotent=True)
        try:
            meta = response.json()["schema"]["properties"]["meta"]["properties"]
        except (ValueError, KeyError, TypeError):
            meta = {}
        if "dispatch_uid" in meta:
            return "by meta dispatch_uid and content marker"
        return "by content marker (meta dispatch_uid is not registered; search must read post content)"

    def describe(self, payload: Payload) -> list[str]:
        body = payload.body
        return [
            f"{body['title']}  (slug {body['slug']}, status {body['status']})",
            *body["content"].split("\n"),
        ]


def _carries(post: dict[str, Any], uid: str) -> bool:
    """Whether a post (read with ``context=edit``) is this item's: its meta or its content says so."""
    meta = post.get("meta")
    if isinstance(meta, dict) and meta.get("dispatch_uid") == uid:
        return True
    content = post.get("content")
    raw = content.get("raw", "") if isinstance(content, dict) else str(content or "")
    return marker(uid) in raw


def _anonymous(response: requests.Response) -> bool:
    """WordPress ran the request as an anonymous visitor: it refuses a post status such a user lacks."""
    try:
        data = response.json().get("data") or {}
    except (ValueError, AttributeError):
        return False
    params = data.get("params") if isinstance(data, dict) else None
    status = params.get("status") if isinstance(params, dict) else None
    return isinstance(status, str) and "forbidden" in status.lower()
