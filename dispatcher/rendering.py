"""Per-channel Jinja2 templates, rendered in a sandbox.

Templates live at ``templates/<channel>/<kind>.<ext>.j2``. Rendering is sandboxed (a template
cannot reach Python internals), HTML templates are autoescaped, and an undefined variable is an
error rather than an empty string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dispatcher.errors import ConfigurationError, ContentError
from dispatcher.items import Item
from dispatcher.words import Publication


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html.j2", ".htm.j2", ".xml.j2"))


class TemplateRenderer:
    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise ConfigurationError(f"templates directory {directory} does not exist")
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(directory),
            autoescape=_autoescape,
            undefined=StrictUndefined,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.names: dict[tuple[str, str], str] = {}
        for path in sorted(directory.glob("*/*.j2")):
            kind = path.name.split(".", 1)[0]
            self.names.setdefault((path.parent.name, kind), f"{path.parent.name}/{path.name}")

    def render(self, channel: str, kind: str, context: dict[str, Any]) -> str:
        name = self.names.get((channel, kind))
        if name is None:
            raise ConfigurationError(f"no template for channel {channel!r} and kind {kind!r}")
        try:
            return self.env.get_template(name).render(context).strip()
        except TemplateError as exc:
            raise ContentError(f"template {name}: {exc}") from exc


def context_for(publication: Publication) -> dict[str, Any]:
    """The variables every template sees."""
    item = publication.item
    return {
        "item": item.model_dump(mode="json"),
        "short": item.short,
        "link": publication.link,
        "uid": publication.uid,
        "revision": publication.revision,
        "stage": publication.stage,
        "previous_title": publication.previous_title,
        "reason": publication.reason,
    }


def publication_for(
    item: Item,
    *,
    item_id: int,
    uid: str,
    revision: int,
    public_url: str,
    audience: int = 0,
    stage: str = "publish",
    previous_title: str | None = None,
    reason: str | None = None,
) -> Publication:
    """Identity and article link of an item; the link is known before the website post exists."""
    slug = f"{item.kind.value.replace('_', '-')}-{uid[:12]}"
    return Publication(
        item=item,
        item_id=item_id,
        uid=uid,
        revision=revision,
        slug=slug,
        link=f"{public_url.rstrip('/')}/{slug}/",
        audience=audience,
        stage=stage,
        previous_title=previous_title,
        reason=reason,
    )
