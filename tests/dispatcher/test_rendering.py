from __future__ import annotations

from pathlib import Path

import pytest

from channels import REGISTRY
from dispatcher.errors import ConfigurationError, ContentError
from dispatcher.items import Kind
from dispatcher.rendering import TemplateRenderer
from settings import PROJECT_DIR

TEMPLATES = PROJECT_DIR / "templates"


def test_every_channel_has_a_template_for_every_kind() -> None:
    renderer = TemplateRenderer(TEMPLATES)
    missing = [(c, k.value) for c in REGISTRY for k in Kind if (c, k.value) not in renderer.names]
    assert not missing


def make(tmp_path: Path, name: str, source: str) -> TemplateRenderer:
    (tmp_path / "website").mkdir(exist_ok=True)
    (tmp_path / "website" / name).write_text(source, encoding="utf-8")
    return TemplateRenderer(tmp_path)


def test_html_templates_are_autoescaped(tmp_path: Path) -> None:
    renderer = make(tmp_path, "warning.html.j2", "<p>{{ text }}</p>")
    assert renderer.render("website", "warning", {"text": "<b>&"}) == "<p>&lt;b&gt;&amp;</p>"


def test_text_templates_are_not_escaped(tmp_path: Path) -> None:
    renderer = make(tmp_path, "warning.txt.j2", "{{ text }}")
    assert renderer.render("website", "warning", {"text": "a < b"}) == "a < b"


def test_an_undefined_variable_is_an_error(tmp_path: Path) -> None:
    renderer = make(tmp_path, "warning.txt.j2", "{{ missing }}")
    with pytest.raises(ContentError, match="missing"):
        renderer.render("website", "warning", {})


def test_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    renderer = make(tmp_path, "warning.txt.j2", "{{ text.__class__.__mro__ }}")
    with pytest.raises(ContentError):
        renderer.render("website", "warning", {"text": "x"})


def test_a_missing_template_is_a_configuration_error(tmp_path: Path) -> None:
    renderer = make(tmp_path, "warning.txt.j2", "x")
    with pytest.raises(ConfigurationError, match="'release'"):
        renderer.render("website", "release", {})
