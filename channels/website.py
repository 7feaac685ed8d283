"""The website, as posts on a WordPress site through its REST API.

Speaks: ``/wp-json/wp/v2/posts`` (create: ``POST /posts``, update: ``POST /posts/<id>``, trash:
``DELETE /posts/<id>``) authenticated with an Application Password over HTTP Basic — see
https://developer.wordpress.org/rest-api/reference/posts/ and
https://make.wordpress.org/core/2020/11/05/application-passwords-integration-guide/.
Errors come as ``{"code": "rest_…", "message": …, "data": {"status": …}}``.

Create-or-update is keyed by the item: each post carries the item's id in the post meta field
``dispatch_uid`` (the site registers it with ``register_post_meta(…, 'show_in_rest' => true)``, see
the README) and in an HTML comment in its content. Before creating, the adapter searches for that id
with ``status=any`` and keeps the post whose meta matches — never trusting the slug, which WordPress
renames on collision — so a repeated send, a create whose answer was lost, or a correction updates
the same post and never creates a second one. A retraction moves the post to the trash (a 410
``rest_already_trashed`` is success) or back to draft. Categories follow the disclosure catalogue in
the settings (kind → category ids).
"""

from __future__ import annotations

from typing import Any

from channels.base import Channel, Health, Payload, Publication, Receipt, Renderer, Target
from dispatcher.errors import PermanentChannelError
from dispatcher.rendering import context_for
from settings import WebsiteSettings


class WebsiteChannel(Channel):
    name = "website"
    # A post that is already in the trash: retracting it again is done, not an error.
    already_trashed = "rest_already_trashed"

    def __init__(self, settings: WebsiteSettings, **kwargs: Any) -> None:
        super().__init__(timeout=settings.timeout, **kwargs)
        self.settings = settings
        self.http.auth = (settings.username, settings.app_password.get_secret_value())
        self.posts_url = f"{settings.base_url.rstrip('/')}/wp-json/wp/v2/posts"

    def provider_code(self, response: Any) -> str | None:
        return self.json_field(response, "code")

    def targets(self, publication: Publication) -> list[Target]:
        return [Target("site")]

    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        item = publication.item
        content = renderer.render(self.name, item.kind.value, context_for(publication))
        # The item's id also stands in the content, where WordPress's search finds it: the lookup
        # never depends on the slug, which WordPress renames when it collides.
        content += f"\n<!-- dispatch:{publication.uid} -->"
        categories = list(self.settings.categories.get(item.kind.value, []))
        if item.interpretation and self.settings.interpretation_category:
            categories.append(self.settings.interpretation_category)
        return Payload(
            channel=self.name,
            target=target.name,
            body={
                "title": item.title,
                "content": content,
                "excerpt": item.short,
                "slug": publication.slug,
                "status": self.settings.post_status,
                "categories": categories,
                "meta": {"dispatch_uid": publication.uid},
            },
        )

    def send(self, payload: Payload, key: str) -> Receipt:
        existing = self.lookup(payload, key)
        url = f"{self.posts_url}/{existing.provider_id}" if existing else self.posts_url
        post = self.request("POST", url, json=payload.body).json()
        return Receipt(
            provider_id=str(post["id"]),
            detail={"link": post.get("link"), "updated": existing is not None},
        )

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        uid = payload.body["meta"]["dispatch_uid"]
        posts = self.request(
            "GET",
            self.posts_url,
            idempotent=True,
            params={"search": uid, "status": "any", "context": "edit", "per_page": 100},
        ).json()
        for post in posts:
            if (post.get("meta") or {}).get("dispatch_uid") == uid:
                return Receipt(provider_id=str(post["id"]), detail={"link": post.get("link")})
        return None

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        url = f"{self.posts_url}/{receipt.provider_id}"
        if self.settings.retract_to == "draft":
            self.request("POST", url, idempotent=True, json={"status": "draft"})
            return
        try:
            self.request("DELETE", url, idempotent=True)
        except PermanentChannelError as exc:
            if exc.code != self.already_trashed:
                raise

    def probe(self) -> Health:
        return self.timed_probe(
            f"{self.settings.base_url.rstrip('/')}/wp-json/wp/v2/users/me",
            params={"context": "edit"},
        )
