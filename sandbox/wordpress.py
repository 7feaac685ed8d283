"""An emulator of a stock WordPress 6.1 site's REST API (``/wp-json/wp/v2/…``), with no plugins.

The real peer is WordPress 6.1 as Debian's ``wordpress`` package installs it: posts, categories and
``users/me`` under ``/wp-json/`` (or ``/?rest_route=``), authenticated by Application Passwords over
HTTP Basic. Its documentation:

- https://developer.wordpress.org/rest-api/reference/posts/
- https://developer.wordpress.org/rest-api/reference/categories/
- https://developer.wordpress.org/rest-api/using-the-rest-api/authentication/
- https://developer.wordpress.org/rest-api/using-the-rest-api/global-parameters/ (``_method``)

Every behaviour below is restated from WordPress's public source (repository
``WordPress/wordpress-develop``, paths under ``src/wp-includes/``):

- ``rest-api/class-wp-rest-server.php``: authentication errors before routing; a request is validated
  (``has_valid_params``), then sanitized (``sanitize_params``), then the permission callback runs, then
  the handler; an unknown route or method is 404 ``rest_no_route``; ``_method`` overrides the method.
- ``rest-api/class-wp-rest-request.php``: parameter order (JSON, form, query, URL, defaults); the
  ``rest_invalid_param`` answer with ``params`` and ``details``; ``rest_invalid_json``.
- ``rest-api.php``: ``rest_validate_value_from_schema`` (its messages), ``rest_parse_date``,
  ``rest_get_date_with_gmt``, ``rest_authorization_required_code`` (401 anonymous, 403 logged in),
  ``rest_application_password_check_errors`` (401 by default), the index's ``authentication``.
- ``rest-api/endpoints/class-wp-rest-posts-controller.php``: every posts route, its permission checks
  and messages, ``sanitize_post_statuses`` ("Status is forbidden."), ``check_status``,
  ``prepare_item_for_database``, ``handle_terms``, trash/force delete, paging headers.
- ``rest-api/endpoints/class-wp-rest-terms-controller.php`` and ``class-wp-rest-users-controller.php``.
- ``rest-api/fields/class-wp-rest-meta-fields.php``: only registered ``show_in_rest`` meta is read or
  written, others are ignored; with none registered ``meta`` is PHP's empty array, JSON ``[]``.
- ``post.php``: ``wp_insert_post`` (empty content, slug from title, floating draft dates, default
  category, untrash restores ``_wp_desired_post_slug``), ``wp_unique_post_slug`` (``-2``, ``-3``…;
  drafts and pending posts exempt; feed names, ``embed`` and date-like numbers refused),
  ``wp_add_trashed_suffix_to_post_name_for_post`` (``__trashed``), ``register_post_status``.
- ``taxonomy.php``: ``wp_set_object_terms`` skips term IDs that do not exist.
- ``link-template.php``: ``get_permalink`` and ``wp_force_plain_post_permalink`` (``?p=<id>``).
- ``user.php``: ``wp_validate_application_password`` (ignored unless available),
  ``wp_authenticate_application_password`` (non-alphanumerics stripped; ``incorrect_password``),
  ``wp_is_application_passwords_supported`` (HTTPS or a local environment).
- ``class-wp-query.php``: ``parse_search`` / ``parse_search_terms`` and ``post_status=any``.
- ``formatting.php``: ``sanitize_title_with_dashes``, ``utf8_uri_encode``, ``sanitize_text_field``.
- ``default-filters.php``: ``title_save_pre`` trims the title.

The single user (``username``) is an administrator, so it has ``unfiltered_html`` and what it sends
in title, content and excerpt is stored as sent. The site's timezone is UTC (WordPress's default
``gmt_offset`` 0), so local and GMT dates are equal.

Not emulated: other routes (pages, media, tags, comments…), revisions, post passwords beyond hiding
content from visitors, the ``rendered`` filters beyond a small ``wpautop`` (``wptexturize`` and the
rest are left out, so compare ``raw`` fields), the "Hello world!" post a fresh install carries, and
the 404 a plain-permalink site gives for ``/wp-json/`` without server rewrites.

Besides the shared ``/_sandbox/`` routes, ``GET /_sandbox/posts`` lists every post, trash included.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import math
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

from flask import Flask, Response, jsonify, request

from sandbox.emulator import EmulatorState, emulator_app

DEFAULT_CATEGORIES = {1: "未分类", 2: "预警信息", 3: "安全提示", 4: "政策文件", 5: "政策解读"}
USER_ID = 1
# post.php, register_post_status(): the non-internal statuses, in registration order.
WRITABLE_STATUSES = ("publish", "future", "draft", "pending", "private")
# get_post_stati(): every status the collection's ``status`` accepts, plus "any".
ALL_STATUSES = (
    *WRITABLE_STATUSES,
    "trash",
    "auto-draft",
    "inherit",
    "request-pending",
    "request-confirmed",
    "request-failed",
    "request-completed",
)
# Statuses registered with exclude_from_search (internal ones): what "any" leaves out.
EXCLUDED_FROM_ANY = ("trash", "auto-draft", "inherit")
# register_post_status(… 'date_floating' => true): their date follows the last save until published.
FLOATING = ("draft", "pending", "auto-draft")
# class-wp-rewrite.php: $feeds; wp_unique_post_slug() refuses these and "embed" as slugs.
FEEDS = ("feed", "rdf", "rss", "rss2", "atom")
# class-wp-query.php, get_search_stopwords(): the English list (the default locale).
STOPWORDS = frozenset(
    "about,an,are,as,at,be,by,com,for,from,how,in,is,it,of,on,or,that,the,this,to,was,what,when,"
    "where,who,will,with,www".split(",")
)
FORMATS = ("standard", "aside", "chat", "gallery", "link", "image", "quote", "status", "video", "audio")
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class WPError(Exception):
    """A ``WP_Error``: a code, a message and its data (``status`` among them when it has one)."""

    def __init__(self, code: str, message: str, status: int | None = None, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: dict[str, Any] = ({"status": status} if status is not None else {}) | data
        self.more: list[WPError] = []

    @property
    def status(self) -> int:
        return int(self.data.get("status", 500))

    def details(self) -> dict[str, Any]:
        """rest_convert_error_to_response()->get_data(): what ``data.details`` holds for one parameter."""
        return {"code": self.code, "message": self.message, "data": self.data or None}

    def body(self) -> dict[str, Any]:
        body = self.details()
        if self.more:
            # rest_convert_error_to_response(): a WP_Error holding several errors lists the others.
            body["additional_errors"] = [err.details() for err in self.more]
        return body


def unauthorized(logged_in: bool) -> int:
    """rest_authorization_required_code(): 403 for a logged-in user, 401 for a visitor."""
    return 403 if logged_in else 401


# ---------------------------------------------------------------- formatting.php, restated


def remove_accents(text: str) -> str:
    """remove_accents(), approximately: Latin letters lose their diacritics, other scripts stay."""
    special = {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "đ": "d"}
    special |= {"Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D"}
    out = []
    for char in text:
        if char in special:
            out.append(special[char])
        elif ord(char) < 0x250 or 0x1E00 <= ord(char) < 0x1F00:
            out.append("".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)))
        else:
            out.append(char)
    return "".join(out)


def utf8_uri_encode(text: str, length: int = 0) -> str:
    """utf8_uri_encode(): non-ASCII characters as lowercase %xx octets, cut before ``length`` bytes."""
    out, used = [], 0
    for char in text:
        encoded = char if ord(char) < 128 else "".join(f"%{b:x}" for b in char.encode())
        if length and used + len(encoded) > length:
            break
        out.append(encoded)
        used += len(encoded)
    return "".join(out)


_STRIPPED = (
    "%c2%ad %c2%a1 %c2%bf %c2%ab %c2%bb %e2%80%b9 %e2%80%ba %e2%80%98 %e2%80%99 %e2%80%9c %e2%80%9d "
    "%e2%80%9a %e2%80%9b %e2%80%9e %e2%80%9f %e2%80%a2 %c2%a9 %c2%ae %c2%b0 %e2%80%a6 %e2%84%a2 %c2%b4 "
    "%cb%8a %cc%81 %cd%81 %cc%80 %cc%84 %cc%8c %e2%80%8b %e2%80%8c %e2%80%8d %e2%80%8e %e2%80%8f "
    "%e2%80%aa %e2%80%ab %e2%80%ac %e2%80%ad %e2%80%ae %ef%bb%bf %ef%bf%bc"
).split()
_HYPHENATED = (
    "%c2%a0 %e2%80%93 %e2%80%94 &nbsp; &#160; &ndash; &#8211; &mdash; &#8212; / %e2%80%80 %e2%80%81 "
    "%e2%80%82 %e2%80%83 %e2%80%84 %e2%80%85 %e2%80%86 %e2%80%87 %e2%80%88 %e2%80%89 %e2%80%8a "
    "%e2%80%a8 %e2%80%a9 %e2%80%af"
).split()


def strip_tags(text: str) -> str:
    """PHP strip_tags(), approximately: comments and tags go, text stays."""
    return re.sub(r"<[^>]*>", "", re.sub(r"<!--.*?-->", "", text, flags=re.S))


def sanitize_title(title: str, fallback: str = "") -> str:
    """sanitize_title() in the 'save' context: the slug WordPress stores, percent-encoded and lowercase."""
    title = remove_accents(strip_tags(title))
    title = re.sub(r"%([a-fA-F0-9][a-fA-F0-9])", r"---\1---", title)
    title = title.replace("%", "")
    title = re.sub(r"---([a-fA-F0-9][a-fA-F0-9])---", r"%\1", title)
    if any(ord(c) > 127 for c in title):
        title = utf8_uri_encode(title.lower(), 200)
    title = title.lower()
    for token in _HYPHENATED:
        title = title.replace(token, "-")
    for token in _STRIPPED:
        title = title.replace(token, "")
    title = title.replace("%c3%97", "x")
    title = re.sub(r"&.+?;", "", title).replace(".", "-")
    title = re.sub(r"[^%a-z0-9 _-]", "", title)
    title = re.sub(r"-+", "-", re.sub(r"\s+", "-", title)).strip("-")
    return title or fallback


def sanitize_text_field(text: str) -> str:
    """sanitize_text_field(): tags (comments too) stripped, whitespace collapsed, %xx octets removed."""
    if "<" in text:
        # wp_pre_kses_less_than(): a "<" that opens no tag becomes text, then wp_strip_all_tags().
        text = re.sub(
            r"<[^>]*?((?=<)|>|$)", lambda m: m[0] if ">" in m[0] else m[0].replace("<", "&lt;"), text
        )
        text = re.sub(r"<(script|style)[^>]*?>.*?</\1>", "", text, flags=re.S | re.I)
        text = strip_tags(text).strip().replace("<\n", "&lt;\n")
    text = re.sub(r"[\r\n\t ]+", " ", text).strip()
    found = False
    while match := re.search(r"%[a-f0-9]{2}", text, re.I):
        text, found = text.replace(match[0], ""), True
    return re.sub(" +", " ", text).strip() if found else text


_BLOCK = (
    r"</?(?:table|thead|tfoot|caption|col|colgroup|tbody|tr|td|th|div|dl|dd|dt|ul|ol|li|pre|form|map|area|"
    r"blockquote|address|math|style|p|h[1-6]|hr|fieldset|legend|section|article|aside|hgroup|header|footer|"
    r"nav|figure|figcaption|details|menu|summary)[\s/>]|<!--"
)


def autop(text: str) -> str:
    """wpautop(), reduced: text between blank lines becomes a paragraph unless it is block HTML."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    chunks = [chunk.strip() for chunk in re.split(r"\n\s*\n", text) if chunk.strip()]
    if not chunks:
        return ""
    paras = [c if re.match(_BLOCK, c, re.I) else "<p>" + c.replace("\n", "<br />\n") + "</p>" for c in chunks]
    return "\n".join(paras) + "\n"


# ---------------------------------------------------------------- rest-api.php, restated

Spec = dict[str, Any]


def parse_list(value: Any) -> list[Any]:
    """wp_parse_list(): an array as is, a string split on commas and whitespace."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [part for part in re.split(r"[\s,]+", str(value)) if part]


def is_integer(value: Any) -> bool:
    """rest_is_integer(): numeric and whole (PHP's is_numeric, so "10" and "10.0" pass)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        number = float(value) if isinstance(value, float | str) else math.nan
    except ValueError:
        return False
    return not math.isnan(number) and not math.isinf(number) and round(number) == number


def to_int(value: Any) -> int:
    """PHP's (int) cast of a value already known to be numeric, or 0."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def is_boolean(value: Any) -> bool:
    """rest_is_boolean()."""
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("false", "true", "0", "1")
    return isinstance(value, int) and value in (0, 1)


def to_bool(value: Any) -> bool:
    """rest_sanitize_boolean()."""
    if isinstance(value, str):
        return value.lower() not in ("false", "0", "")
    return bool(value)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}(?::\d{2})?)?$")


def parse_date(value: str) -> datetime | None:
    """rest_parse_date() then rest_get_date_with_gmt(): the UTC time (the site's timezone is UTC)."""
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    text = value.replace("t", "T").replace(" ", "T").replace("Z", "+00:00")
    if re.search(r"[+-]\d{2}$", text):
        text += ":00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.replace(microsecond=0)


def schema_error(value: Any, spec: Spec, param: str) -> WPError | None:
    """rest_validate_value_from_schema() for the keywords these routes use, with WordPress's messages."""
    types = spec.get("type")
    if isinstance(types, list):
        if value is None and "null" in types:
            return None
        types = next(t for t in types if t != "null")
    if types == "array":
        if isinstance(value, dict) or value is None:
            return WPError("rest_invalid_type", f"{param} is not of type array.")
        for number, item in enumerate(parse_list(value)):
            err = schema_error(item, spec.get("items", {}), f"{param}[{number}]")
            if err:
                return err
        return None
    if types == "integer":
        if not is_integer(value):
            return WPError("rest_invalid_type", f"{param} is not of type integer.")
        number, low, high = to_int(value), spec.get("minimum"), spec.get("maximum")
        if low is not None and high is not None and not low <= number <= high:
            return WPError(
                "rest_out_of_bounds", f"{param} must be between {low} (inclusive) and {high} (inclusive)"
            )
        if low is not None and high is None and number < low:
            return WPError("rest_out_of_bounds", f"{param} must be greater than or equal to {low}")
    elif types == "boolean":
        if not is_boolean(value):
            return WPError("rest_invalid_type", f"{param} is not of type boolean.")
    elif types == "string":
        if not isinstance(value, str):
            return WPError("rest_invalid_type", f"{param} is not of type string.")
        if spec.get("format") == "date-time" and parse_date(value) is None:
            return WPError("rest_invalid_date", "Invalid date.")
    elif types == "object" and not isinstance(value, dict | list):
        return WPError("rest_invalid_type", f"{param} is not of type object.")
    enum = spec.get("enum")
    if enum is not None and value not in enum:
        listed = ", ".join(str(option) for option in enum)
        if len(enum) == 1:
            return WPError("rest_not_in_enum", f"{param} is not {listed}.")
        return WPError("rest_not_in_enum", f"{param} is not one of {listed}.")
    return None


def sanitize_value(value: Any, spec: Spec) -> Any:
    """rest_sanitize_value_from_schema()."""
    types = spec.get("type")
    if isinstance(types, list):
        if value is None:
            return None
        types = next(t for t in types if t != "null")
    if types == "array":
        return [sanitize_value(item, spec.get("items", {})) for item in parse_list(value)]
    if types == "integer":
        return to_int(value)
    if types == "boolean":
        return to_bool(value)
    if types == "string":
        return str(value)
    return value


# ---------------------------------------------------------------- the request


@dataclass
class Call:
    """One REST request as WP_REST_Request sees it: its parameters by source, and who sent it."""

    method: str
    route: str
    home: str
    query: dict[str, Any]
    form: dict[str, Any]
    body: dict[str, Any] | None
    logged_in: bool = False
    url: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    touched: int | None = None

    def sources(self) -> list[dict[str, Any]]:
        """get_parameter_order(): JSON, then the form body, then the query, the URL and the defaults."""
        if self.method == "GET":
            return [self.query, self.url, self.defaults]
        return [s for s in (self.body, self.form, self.query, self.url, self.defaults) if s is not None]

    def has(self, key: str) -> bool:
        return any(key in source for source in self.sources())

    def get(self, key: str) -> Any:
        for source in self.sources():
            if key in source:
                return source[key]
        return None


Callback = Callable[[Any, Call, str, Spec], Any]


def validate_arg(value: Any, call: Call, key: str, spec: Spec) -> Any:
    """rest_validate_request_arg()."""
    return schema_error(value, spec, key) or True


def sanitize_arg(value: Any, call: Call, key: str, spec: Spec) -> Any:
    """rest_sanitize_request_arg()."""
    return sanitize_value(value, spec)


def parse_arg(value: Any, call: Call, key: str, spec: Spec) -> Any:
    """rest_parse_request_arg(): validate, then sanitize (the default for typed args without a callback)."""
    return schema_error(value, spec, key) or sanitize_value(value, spec)


def absint(value: Any, call: Call, key: str, spec: Spec) -> int:
    return abs(to_int(value))


def sanitize_key(value: Any, call: Call, key: str, spec: Spec) -> str:
    return re.sub(r"[^a-z0-9_\-]", "", str(value).lower())


def text_field(value: Any, call: Call, key: str, spec: Spec) -> str:
    return sanitize_text_field(str(value))


def slug_field(value: Any, call: Call, key: str, spec: Spec) -> str:
    """WP_REST_Controller::sanitize_slug(): sanitize_title()."""
    return sanitize_title(str(value))


def meta_is_array(value: Any, call: Call, key: str, spec: Spec) -> Any:
    """WP_REST_Meta_Fields::check_meta_is_array(): false (so "Invalid parameter.") unless an array."""
    return value if isinstance(value, dict | list) else False


def post_statuses(value: Any, call: Call, key: str, spec: Spec) -> Any:
    """sanitize_post_statuses(): any status but the default needs edit_posts, else "Status is forbidden."."""
    statuses = list(dict.fromkeys(sanitize_title(str(s)) for s in parse_list(value)))
    for status in statuses:
        if status == spec["default"]:
            continue
        if not call.logged_in:
            return WPError("rest_forbidden_status", "Status is forbidden.", unauthorized(call.logged_in))
        err = schema_error(status, spec, key)
        if err:
            return err
    return statuses


def context_param() -> Spec:
    """get_context_param(): view, embed or edit."""
    return {
        "type": "string",
        "enum": ["view", "embed", "edit"],
        "default": "view",
        "validate_callback": validate_arg,
        "sanitize_callback": sanitize_key,
    }


def collection_params() -> dict[str, Spec]:
    """WP_REST_Controller::get_collection_params(): context, page, per_page (1 to 100), search."""
    return {
        "context": context_param(),
        "page": {
            "type": "integer",
            "default": 1,
            "minimum": 1,
            "validate_callback": validate_arg,
            "sanitize_callback": absint,
        },
        "per_page": {
            "type": "integer",
            "default": 10,
            "minimum": 1,
            "maximum": 100,
            "validate_callback": validate_arg,
            "sanitize_callback": absint,
        },
        "search": {"type": "string", "validate_callback": validate_arg, "sanitize_callback": text_field},
    }


def check_args(call: Call, args: dict[str, Spec]) -> None:
    """has_valid_params() then sanitize_params(): each answers 400 rest_invalid_param naming the params."""
    if call.body is not None and not isinstance(call.body, dict):
        call.body = {}
    invalid: dict[str, str] = {}
    details: dict[str, Any] = {}
    for key, spec in args.items():
        value, check = call.get(key), spec.get("validate_callback")
        if value is None or check is None:
            continue
        result = check(value, call, key, spec)
        if result is False:
            invalid[key] = "Invalid parameter."
        elif isinstance(result, WPError):
            invalid[key], details[key] = result.message, result.details()
    if not invalid:
        for source in call.sources():
            for key, value in list(source.items()):
                arg = args.get(key)
                if arg is None:
                    continue
                # Without a sanitize_callback, a typed arg gets rest_parse_request_arg (validate + sanitize).
                clean = (
                    arg["sanitize_callback"]
                    if "sanitize_callback" in arg
                    else parse_arg
                    if "type" in arg
                    else None
                )
                if clean is None:
                    continue
                result = clean(value, call, key, arg)
                if isinstance(result, WPError):
                    invalid[key], details[key] = result.message, result.details()
                else:
                    source[key] = result
    if invalid:
        raise WPError(
            "rest_invalid_param",
            f"Invalid parameter(s): {', '.join(invalid)}",
            400,
            params=invalid,
            details=details or [],  # PHP's empty array when only "Invalid parameter." was given
        )


# ---------------------------------------------------------------- the site


@dataclass
class Post:
    """A row of wp_posts (type ``post``) with the meta and terms WordPress keeps beside it."""

    id: int
    title: str
    content: str
    excerpt: str
    status: str
    slug: str
    date: datetime
    date_gmt: datetime | None  # None: '0000-00-00 00:00:00', a draft's floating date
    modified: datetime
    guid: str = ""
    password: str = ""
    comment_status: str = "open"
    ping_status: str = "open"
    format: str = "standard"
    sticky: bool = False
    categories: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    desired_slug: str | None = None  # _wp_desired_post_slug, kept while in the trash


@dataclass
class Reply:
    data: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def iso(moment: datetime) -> str:
    """mysql_to_rfc3339(): no timezone suffix."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def php_empty(value: Any) -> bool:
    """PHP's empty(): "", "0", 0, null, false and empty arrays."""
    return value in (None, "", "0", 0, False) or value == [] or value == {}


@dataclass
class Route:
    pattern: re.Pattern[str]
    endpoints: dict[
        str, tuple[Callable[[], dict[str, Spec]], Callable[[Call], None], Callable[[Call], Reply]]
    ]


class Site:
    """The WordPress install: its options, its posts, and the REST routes over them."""

    def __init__(
        self,
        *,
        username: str,
        app_password: str,
        public_url: str,
        app_passwords_available: bool,
        registered_meta: tuple[str, ...],
        permalink_structure: str,
        categories: dict[int, str],
        site_name: str,
    ) -> None:
        self.username = username
        self.app_password = re.sub(r"[^a-zA-Z0-9]", "", app_password)
        self.public_url = public_url.rstrip("/")
        self.app_passwords_available = app_passwords_available
        self.registered_meta = registered_meta
        self.structure = permalink_structure
        self.categories = dict(categories)
        # The installer's default category (option default_category) is term 1, slug "uncategorized".
        self.default_category = 1 if 1 in self.categories else min(self.categories, default=0)
        self.site_name = site_name
        self.posts: dict[int, Post] = {}
        self.ids = itertools.count(101)
        self.lock = threading.RLock()
        item = r"/wp/v2/posts/(?P<id>[\d]+)"
        self.routes = [
            Route(re.compile(r"/", re.I), {"GET": (dict, self.allow, self.index)}),
            Route(re.compile(r"/wp/v2", re.I), {"GET": (dict, self.allow, self.namespace_index)}),
            Route(
                re.compile(r"/wp/v2/posts", re.I),
                {
                    "GET": (self.list_args, self.list_allowed, self.list_posts),
                    "POST": (lambda: self.write_args(with_id=False), self.create_allowed, self.create_post),
                },
            ),
            Route(
                re.compile(item, re.I),
                {
                    "GET": (self.read_args, self.read_allowed, self.read_post),
                    "POST": (self.write_args, self.update_allowed, self.update_post),
                    "PUT": (self.write_args, self.update_allowed, self.update_post),
                    "PATCH": (self.write_args, self.update_allowed, self.update_post),
                    "DELETE": (self.delete_args, self.delete_allowed, self.delete_post),
                },
            ),
            Route(
                re.compile(r"/wp/v2/categories", re.I),
                {"GET": (self.category_list_args, self.categories_allowed, self.list_categories)},
            ),
            Route(
                re.compile(r"/wp/v2/categories/(?P<id>[\d]+)", re.I),
                {"GET": (lambda: {"context": context_param()}, self.allow, self.read_category)},
            ),
            Route(
                re.compile(r"/wp/v2/users/me", re.I),
                {"GET": (lambda: {"context": context_param()}, self.me_allowed, self.me)},
            ),
        ]

    # ------------------------------------------------------------ serving

    def authenticate(self, credentials: tuple[str, str] | None) -> bool:
        """determine_current_user, then rest_application_password_check_errors: logged in, or a 401."""
        # wp_validate_application_password(): when application passwords are unavailable (no HTTPS and
        # not a 'local' environment) the Basic credentials are never looked at: the caller is a visitor.
        if credentials is None or not self.app_passwords_available:
            return False
        name, password = credentials
        if name != self.username:
            if "@" in name:
                raise WPError(
                    "invalid_email",
                    "<strong>Error</strong>: Unknown email address. Check again or try your username.",
                    401,
                )
            raise WPError(
                "invalid_username",
                "<strong>Error</strong>: Unknown username. Check again or try your email address.",
                401,
            )
        # Non-alphanumerics are stripped, so the spaces WordPress shows in the password are optional.
        if re.sub(r"[^a-zA-Z0-9]", "", password) != self.app_password:
            raise WPError(
                "incorrect_password", "The provided password is an invalid application password.", 401
            )
        return True

    def dispatch(self, call: Call, credentials: tuple[str, str] | None, raw_json_error: bool) -> Reply:
        """WP_REST_Server::serve_request() and dispatch(): authenticate, route, validate, permit, act."""
        call.logged_in = self.authenticate(credentials)
        method = "GET" if call.method == "HEAD" else call.method
        if method == "OPTIONS":
            known = next((r for r in self.routes if r.pattern.fullmatch(call.route)), None)
            # rest_handle_options_request(): an unknown route answers 200 with an empty array.
            return self.options(call, known) if known is not None else Reply([])
        matches = ((route, route.pattern.fullmatch(call.route)) for route in self.routes)
        found = next(((r, m) for r, m in matches if m and method in r.endpoints), None)
        if found is None:
            # A known route asked with another method is no match either: 404, not 405.
            raise WPError("rest_no_route", "No route was found matching the URL and request method.", 404)
        route, match = found
        assert match is not None
        args_of, allowed, act = route.endpoints[method]
        call.method = method
        call.url = dict(match.groupdict())
        args = args_of()
        # set_default_params(): only defaults that PHP's isset() sees, so a null default is no default.
        call.defaults = {
            k: copy.deepcopy(spec["default"]) for k, spec in args.items() if spec.get("default") is not None
        }
        if raw_json_error:
            raise WPError(
                "rest_invalid_json",
                "Invalid JSON body passed.",
                400,
                json_error_code=4,
                json_error_message="Syntax error",
            )
        check_args(call, args)
        with self.lock:
            allowed(call)
            return act(call)

    def allow(self, call: Call) -> None:
        return None

    def options(self, call: Call, route: Route) -> Reply:
        """rest_handle_options_request(): the route's description; rest_send_allow_header(): the methods
        whose permission check this caller passes (without parameters)."""
        match = route.pattern.fullmatch(call.route)
        assert match is not None
        permitted = []
        for method, (_, allowed, _) in route.endpoints.items():
            probe = Call(method, call.route, call.home, {}, {}, None, call.logged_in, dict(match.groupdict()))
            try:
                with self.lock:
                    allowed(probe)
            except WPError:
                continue
            permitted.append(method)
        endpoints = [
            {"methods": [m], "args": {k: {} for k in args_of()}}
            for m, (args_of, _, _) in route.endpoints.items()
        ]
        data: dict[str, Any] = {
            "namespace": "wp/v2",
            "methods": list(route.endpoints),
            "endpoints": endpoints,
        }
        if "/posts" in call.route:
            data["schema"] = self.post_schema()
        return Reply(data, headers={"Allow": ", ".join(permitted)} if permitted else {})

    def post_schema(self) -> dict[str, Any]:
        """WP_REST_Posts_Controller::get_item_schema(), in part: the OPTIONS answer describes a post, its
        ``meta`` listing the keys registered with show_in_rest (WP_REST_Meta_Fields::get_field_schema)."""
        text = {"type": "object", "context": ["view", "edit", "embed"]}
        return {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": "post",
            "type": "object",
            "properties": {
                "id": {"type": "integer", "readonly": True},
                "slug": {"type": "string"},
                "status": {"type": "string", "enum": ["publish", "future", "draft", "pending", "private"]},
                "link": {"type": "string", "format": "uri", "readonly": True},
                "title": text,
                "content": text,
                "excerpt": text,
                "categories": {"type": "array", "items": {"type": "integer"}},
                "meta": {
                    "type": "object",
                    "context": ["view", "edit"],
                    "properties": {
                        key: {"type": "string", "default": "", "context": ["view", "edit"]}
                        for key in self.registered_meta
                    },
                },
            },
        }

    def rest_url(self, call: Call, path: str) -> str:
        """rest_url(): under /wp-json/ with pretty permalinks, else ?rest_route=."""
        if self.structure:
            return f"{call.home}/wp-json/{path.lstrip('/')}"
        return f"{call.home}/?{urlencode({'rest_route': '/' + path.lstrip('/')})}"

    def route_list(self, call: Call) -> dict[str, Any]:
        """The ``routes`` member of the indexes: the routes emulated here."""
        routes = {
            "/wp/v2": ["GET"],
            "/wp/v2/posts": ["GET", "POST"],
            "/wp/v2/posts/(?P<id>[\\d]+)": ["GET", "POST", "PUT", "PATCH", "DELETE"],
            "/wp/v2/categories": ["GET"],
            "/wp/v2/categories/(?P<id>[\\d]+)": ["GET"],
            "/wp/v2/users/me": ["GET"],
        }
        return {
            path: {
                "namespace": "wp/v2",
                "methods": methods,
                "_links": {"self": [{"href": self.rest_url(call, path)}]},
            }
            for path, methods in routes.items()
        }

    def namespace_index(self, call: Call) -> Reply:
        """WP_REST_Server::get_namespace_index() for wp/v2."""
        return Reply(
            {
                "namespace": "wp/v2",
                "routes": self.route_list(call),
                "_links": {"up": [{"href": self.rest_url(call, "/")}]},
            }
        )

    def index(self, call: Call) -> Reply:
        """WP_REST_Server::get_index(); rest_add_application_passwords_to_index() only when available."""
        auth: Any = []  # PHP's empty array when application passwords are unavailable
        if self.app_passwords_available:
            endpoint = f"{call.home}/wp-admin/authorize-application.php"
            auth = {"application-passwords": {"endpoints": {"authorization": endpoint}}}
        return Reply(
            {
                "name": self.site_name,
                "description": "",
                "url": call.home,
                "home": call.home,
                "gmt_offset": 0,
                "timezone_string": "",
                "namespaces": ["oembed/1.0", "wp/v2", "wp-site-health/v1", "wp-block-editor/v1"],
                "authentication": auth,
                "routes": {"/": {"namespace": "", "methods": ["GET"]}} | self.route_list(call),
            }
        )

    # ------------------------------------------------------------ users

    def me_allowed(self, call: Call) -> None:
        if not call.logged_in:
            raise WPError("rest_not_logged_in", "You are not currently logged in.", 401)

    def me(self, call: Call) -> Reply:
        """get_current_item(): the user; the edit context adds the account fields, roles and capabilities."""
        nicename = sanitize_title(self.username)
        link = f"{call.home}/author/{nicename}/" if self.structure else f"{call.home}/?author={USER_ID}"
        avatar = "https://secure.gravatar.com/avatar/?s={}&d=mm&r=g"
        data: dict[str, Any] = {
            "id": USER_ID,
            "name": self.username,
            "url": "",
            "description": "",
            "link": link,
            "slug": nicename,
            "avatar_urls": {size: avatar.format(size) for size in ("24", "48", "96")},
            "meta": [],
        }
        if call.get("context") == "edit":
            data |= {
                "username": self.username,
                "first_name": "",
                "last_name": "",
                "email": "",
                "locale": "en_US",
                "nickname": self.username,
                "registered_date": "2022-11-01T00:00:00+00:00",
                "roles": ["administrator"],
                "capabilities": {"unfiltered_html": True, "publish_posts": True, "edit_posts": True},
                "extra_capabilities": {"administrator": True},
            }
        data["_links"] = {"self": [{"href": self.rest_url(call, f"wp/v2/users/{USER_ID}")}]}
        return Reply(data)

    # ------------------------------------------------------------ categories

    def category_slug(self, term_id: int) -> str:
        return (
            "uncategorized"
            if term_id == self.default_category
            else sanitize_title(self.categories[term_id], str(term_id))
        )

    def category_view(self, call: Call, term_id: int) -> dict[str, Any]:
        slug = self.category_slug(term_id)
        link = f"{call.home}/category/{slug}/" if self.structure else f"{call.home}/?cat={term_id}"
        return {
            "id": term_id,
            # _update_post_term_count(): only published posts count.
            "count": sum(1 for p in self.posts.values() if term_id in p.categories and p.status == "publish"),
            "description": "",
            "link": link,
            "name": self.categories[term_id],
            "slug": slug,
            "taxonomy": "category",
            "parent": 0,
            "meta": [],
            "_links": {"self": [{"href": self.rest_url(call, f"wp/v2/categories/{term_id}")}]},
        }

    def category_list_args(self) -> dict[str, Spec]:
        """WP_REST_Terms_Controller::get_collection_params() for a hierarchical taxonomy."""
        return collection_params() | {
            "exclude": {"type": "array", "items": {"type": "integer"}, "default": []},
            "include": {"type": "array", "items": {"type": "integer"}, "default": []},
            "order": {"type": "string", "default": "asc", "enum": ["asc", "desc"]},
            "orderby": {
                "type": "string",
                "default": "name",
                "enum": [
                    "id",
                    "include",
                    "name",
                    "slug",
                    "include_slugs",
                    "term_group",
                    "description",
                    "count",
                ],
            },
            "hide_empty": {"type": "boolean", "default": False},
            "parent": {"type": "integer"},
            "post": {"type": "integer", "default": None},
            "slug": {"type": "array", "items": {"type": "string"}},
        }

    def categories_allowed(self, call: Call) -> None:
        """WP_REST_Terms_Controller::get_items_permissions_check()."""
        post_id = call.get("post")
        if post_id:
            post = self.posts.get(post_id)
            if post is None:
                raise WPError("rest_post_invalid_id", "Invalid post ID.", 400)
            if not self.can_read(post, call):
                raise WPError(
                    "rest_forbidden_context",
                    "Sorry, you are not allowed to view terms for this post.",
                    unauthorized(call.logged_in),
                )
        if call.get("context") == "edit" and not call.logged_in:
            raise WPError(
                "rest_forbidden_context", "Sorry, you are not allowed to edit terms in this taxonomy.", 401
            )

    def list_categories(self, call: Call) -> Reply:
        ids = list(self.categories)
        include, exclude, slugs = call.get("include"), call.get("exclude"), call.get("slug")
        if include:
            ids = [i for i in ids if i in include]
        if exclude:
            ids = [i for i in ids if i not in exclude]
        if slugs:
            wanted = {sanitize_title(str(s)) for s in slugs}
            ids = [i for i in ids if self.category_slug(i) in wanted]
        if call.get("parent") not in (None, 0):
            ids = []
        if call.get("post"):
            ids = [i for i in ids if i in self.posts[call.get("post")].categories]
        views = [self.category_view(call, i) for i in ids]
        search = call.get("search")
        if search:
            # WP_Term_Query: name LIKE %search% OR slug LIKE %search%.
            views = [
                v
                for v in views
                if search.casefold() in v["name"].casefold() or search.casefold() in v["slug"]
            ]
        if call.get("hide_empty"):
            views = [v for v in views if v["count"]]
        orderby = call.get("orderby")
        keys: dict[str, Callable[[dict[str, Any]], Any]] = {
            "id": lambda v: v["id"],
            "slug": lambda v: v["slug"],
            "count": lambda v: v["count"],
            "include": lambda v: include.index(v["id"]) if include else v["id"],
        }
        views.sort(key=keys.get(orderby, lambda v: (v["name"], v["id"])), reverse=call.get("order") == "desc")
        per_page, page = call.get("per_page"), call.get("page")
        total = len(views)
        pages = math.ceil(total / per_page)
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        return Reply(views[(page - 1) * per_page : page * per_page], headers=headers)

    def read_category(self, call: Call) -> Reply:
        term_id = to_int(call.get("id"))
        if term_id not in self.categories:
            raise WPError("rest_term_invalid", "Term does not exist.", 404)
        return Reply(self.category_view(call, term_id))

    # ------------------------------------------------------------ posts: rules of post.php

    def slug_taken(self, slug: str, post_id: int) -> bool:
        return any(p.slug == slug and p.id != post_id for p in self.posts.values())

    def unique_slug(self, slug: str, post_id: int, status: str) -> str:
        """wp_unique_post_slug() for a non-hierarchical type."""
        # Drafts, pending posts and auto-drafts keep whatever slug they are given.
        if status in FLOATING:
            return slug
        own = self.posts.get(post_id)
        date_like = False
        if re.fullmatch(r"[0-9]+", slug) and int(slug) and (own is None or own.slug != slug):
            # A number could be read as a year, a month or a day of the date archives.
            parts = [p for p in self.structure.split("/") if p]
            at = parts.index("%postname%") if "%postname%" in parts else -1
            number = int(slug)
            date_like = at == 0 or (
                at > 0
                and (
                    (parts[at - 1] == "%year%" and number < 13)
                    or (parts[at - 1] == "%monthnum%" and number < 32)
                )
            )
        if self.slug_taken(slug, post_id) or slug in FEEDS or slug == "embed" or date_like:
            suffix = 2
            while True:
                alternative = f"{truncate_slug(slug, 200 - (len(str(suffix)) + 1))}-{suffix}"
                if not self.slug_taken(alternative, post_id):
                    return alternative
                suffix += 1
        return slug

    def add_trashed_suffix(self, post: Post) -> str:
        """wp_add_trashed_suffix_to_post_name_for_post(): keep the slug aside, take ``<slug>__trashed``."""
        if post.slug.endswith("__trashed"):
            return post.slug
        post.desired_slug = post.slug
        post.slug = truncate_slug(post.slug, 191) + "__trashed"
        return post.slug

    def save(self, existing: Post | None, fields: dict[str, Any], call: Call) -> Post:
        """wp_insert_post() / wp_update_post() for what the REST controller passes them."""
        moment = now()
        previous = existing.status if existing else "new"
        # title_save_pre trims the title; an administrator's content and excerpt are kept as sent.
        title = str(fields.get("title", existing.title if existing else "")).strip(" \t\n\r\0\x0b")
        content = str(fields.get("content", existing.content if existing else ""))
        excerpt = str(fields.get("excerpt", existing.excerpt if existing else ""))
        if existing is None and php_empty(title) and php_empty(content) and php_empty(excerpt):
            raise WPError("empty_content", "Content, title, and excerpt are empty.", 400)
        status = fields.get("status") or (existing.status if existing else "draft")
        # wp_update_post(): a draft whose date floats takes the time of this save, unless a date is given.
        clear = existing is not None and existing.status in FLOATING and existing.date_gmt is None
        if "date" in fields:
            date, date_gmt = fields["date"] or moment, fields["date_gmt"]
        elif clear or existing is None:
            date, date_gmt = moment, None
        else:
            assert existing is not None
            date, date_gmt = existing.date, existing.date_gmt
        if date_gmt is None and status not in FLOATING:
            date_gmt = date
        if status == "publish" and date_gmt and (date_gmt - moment) >= timedelta(minutes=1):
            status = "future"
        elif status == "future" and (date_gmt is None or (date_gmt - moment) < timedelta(minutes=1)):
            status = "publish"
        name = fields.get("slug", existing.slug if existing else "")
        if not name:
            name = "" if status in FLOATING else sanitize_title(title)
        else:
            name = sanitize_title(name)
        if existing is not None and previous == "trash" and status != "trash" and existing.desired_slug:
            name, existing.desired_slug = existing.desired_slug, None
        post_id = existing.id if existing else 0
        if status != "trash" and name:
            # A trashed post holding the wanted slug gives it up.
            for other in self.posts.values():
                if other.status == "trash" and other.slug == name and other.id != post_id:
                    self.add_trashed_suffix(other)
        if existing is not None and status == "trash" and previous != "trash":
            name = self.add_trashed_suffix(existing)
        name = self.unique_slug(name, post_id, status)
        if existing is None:
            post = Post(next(self.ids), title, content, excerpt, status, name, date, date_gmt, moment)
            if "date" in fields and fields["date"]:
                post.modified = date
            self.posts[post.id] = post
        else:
            post = existing
            post.title, post.content, post.excerpt, post.status = title, content, excerpt, status
            post.slug, post.date, post.date_gmt, post.modified = name, date, date_gmt, moment
        call.touched = post.id
        for key in ("password", "comment_status", "ping_status"):
            if key in fields:
                setattr(post, key, fields[key])
        if not post.slug and status not in FLOATING:
            post.slug = self.unique_slug(sanitize_title(title, str(post.id)), post.id, status)
        if not post.guid:
            # The GUID is the permalink at the moment of insertion.
            post.guid = self.link(post, call)
        if not post.categories and status != "auto-draft":
            # wp_set_post_categories(): a post always gets the default category when it has none.
            post.categories = [self.default_category] if self.default_category else []
        return post

    def trash(self, post: Post, call: Call) -> None:
        """wp_trash_post(): an update to status ``trash`` (which renames the slug)."""
        self.save(post, {"status": "trash"}, call)

    def set_categories(self, post: Post, ids: list[int]) -> None:
        # wp_set_object_terms(): an integer that names no term is skipped, silently; the list replaces.
        post.categories = [i for i in dict.fromkeys(ids) if i in self.categories]

    def update_meta(self, post: Post, meta: Any, call: Call) -> None:
        """WP_REST_Meta_Fields::update_value(): registered keys only, the others silently ignored."""
        if not isinstance(meta, dict):
            return
        errors: list[WPError] = []
        for key in self.registered_meta:
            if key not in meta:
                continue
            value = meta[key]
            if key.startswith("_"):
                # register_meta(): a protected key gets auth_callback __return_false.
                verb = "delete" if value is None else "update"
                errors.append(
                    WPError(
                        f"rest_cannot_{verb}",
                        f"Sorry, you are not allowed to edit the {key} custom field.",
                        unauthorized(call.logged_in),
                        key=key,
                    )
                )
            elif value is None:
                post.meta.pop(key, None)
            elif not isinstance(value, str):
                errors.append(WPError("rest_invalid_type", f"meta.{key} is not of type string.", 400))
            else:
                post.meta[key] = value
        if errors:
            first = errors[0]
            first.more = errors[1:]
            raise first

    # ------------------------------------------------------------ posts: views

    def link(self, post: Post, call: Call) -> str:
        """get_permalink(): the permalink structure, or ``?p=<id>`` when wp_force_plain_post_permalink()."""
        # Only viewable statuses (publish), and private posts their reader may read, get a pretty link.
        plain = not (post.status == "publish" or (post.status == "private" and call.logged_in))
        if not self.structure or plain:
            return f"{call.home}/?p={post.id}"
        return f"{call.home}/{self.pretty_path(post).lstrip('/')}"

    def pretty_path(self, post: Post, keep_name: bool = False) -> str:
        """The permalink structure's tags replaced; ``keep_name`` leaves %postname% (permalink_template)."""
        cats = sorted(post.categories) or ([self.default_category] if self.default_category else [])
        values = {
            "%year%": f"{post.date.year:04d}",
            "%monthnum%": f"{post.date.month:02d}",
            "%day%": f"{post.date.day:02d}",
            "%hour%": f"{post.date.hour:02d}",
            "%minute%": f"{post.date.minute:02d}",
            "%second%": f"{post.date.second:02d}",
            "%postname%": "%postname%" if keep_name else post.slug,
            "%pagename%": "%pagename%" if keep_name else post.slug,
            "%post_id%": str(post.id),
            "%category%": self.category_slug(cats[0]) if cats else "",
            "%author%": sanitize_title(self.username),
        }
        path = self.structure
        for token, value in values.items():
            path = path.replace(token, value)
        return path

    def can_read(self, post: Post, call: Call) -> bool:
        """check_read_permission(): published posts for anyone, the rest for who can edit them."""
        return post.status == "publish" or call.logged_in

    def meta_value(self, post: Post) -> Any:
        """WP_REST_Meta_Fields::get_value(): an empty PHP array (JSON ``[]``) when nothing is registered."""
        if not self.registered_meta:
            return []
        return {key: post.meta.get(key, "") for key in self.registered_meta}

    def view(self, post: Post, call: Call, context: str) -> dict[str, Any]:
        """prepare_item_for_response(), then filter_response_by_context()."""
        hidden = bool(post.password) and not call.logged_in and call.get("password") != post.password
        source = post.excerpt or trimmed_words(post.content)
        if self.structure:
            template = f"{call.home}/{self.pretty_path(post, keep_name=True).lstrip('/')}"
        else:
            template = f"{call.home}/?p={post.id}"
        generated = (
            post.slug
            if post.slug and post.status not in FLOATING
            else self.unique_slug(sanitize_title(post.title, str(post.id)), post.id, "publish")
        )
        data: dict[str, Any] = {
            "id": post.id,
            "date": iso(post.date),
            "date_gmt": iso(post.date_gmt or post.date),
            "guid": {"rendered": post.guid, "raw": post.guid},
            "modified": iso(post.modified),
            "modified_gmt": iso(post.modified),
            "password": post.password,
            "slug": post.slug,
            "status": post.status,
            "type": "post",
            "link": self.link(post, call),
            "title": {"raw": post.title, "rendered": post.title},
            "content": {
                "raw": post.content,
                "rendered": "" if hidden else autop(post.content),
                "protected": bool(post.password),
                "block_version": 1 if "<!-- wp:" in post.content else 0,
            },
            "excerpt": {
                "raw": post.excerpt,
                "rendered": "" if hidden else autop(source),
                "protected": bool(post.password),
            },
            "author": USER_ID,
            "featured_media": 0,
            "comment_status": post.comment_status,
            "ping_status": post.ping_status,
            "sticky": post.sticky,
            "template": "",
            "format": post.format,
            "meta": self.meta_value(post),
            # get_the_terms() sorts terms by name.
            "categories": sorted(post.categories, key=lambda i: (self.categories[i], i)),
            "tags": [],
            "permalink_template": template,
            "generated_slug": generated,
        }
        edit_only = ("password", "permalink_template", "generated_slug")
        embed = ("id", "date", "slug", "type", "link", "title", "excerpt", "author", "featured_media")
        if context != "edit":
            data = {k: v for k, v in data.items() if k not in edit_only}
            data["guid"].pop("raw", None)
            data["title"].pop("raw")
            data["content"].pop("raw")
            data["content"].pop("block_version")
            data["excerpt"].pop("raw")
        if context == "embed":
            data = {k: v for k, v in data.items() if k in embed}
        data["_links"] = {
            "self": [{"href": self.rest_url(call, f"wp/v2/posts/{post.id}")}],
            "collection": [{"href": self.rest_url(call, "wp/v2/posts")}],
        }
        return data

    # ------------------------------------------------------------ posts: routes

    def write_args(self, with_id: bool = True) -> dict[str, Spec]:
        """get_endpoint_args_for_item_schema(): the schema's writable properties, in schema order.

        The readonly ``id`` is no argument of the create route; the item routes have it from the URL.
        """
        date: Spec = {"type": ["string", "null"], "format": "date-time"}
        args: dict[str, Spec] = {
            "date": date,
            "date_gmt": dict(date),
            "slug": {"type": "string", "sanitize_callback": slug_field},
            "status": {
                "type": "string",
                "enum": list(WRITABLE_STATUSES),
                "validate_callback": self.check_status,
            },
            "password": {"type": "string"},
            # Title, content and excerpt: no callbacks; prepare_item_for_database() reads them.
            "title": {"type": "object", "validate_callback": None, "sanitize_callback": None},
            "content": {"type": "object", "validate_callback": None, "sanitize_callback": None},
            "author": {"type": "integer"},
            "excerpt": {"type": "object", "validate_callback": None, "sanitize_callback": None},
            "featured_media": {"type": "integer"},
            "comment_status": {"type": "string", "enum": ["open", "closed"]},
            "ping_status": {"type": "string", "enum": ["open", "closed"]},
            "format": {"type": "string", "enum": list(FORMATS)},
            "meta": {"type": "object", "validate_callback": meta_is_array, "sanitize_callback": None},
            "sticky": {"type": "boolean"},
            "template": {"type": "string"},
            "categories": {"type": "array", "items": {"type": "integer"}},
            "tags": {"type": "array", "items": {"type": "integer"}},
        }
        for spec in args.values():
            spec.setdefault("validate_callback", validate_arg)
            spec.setdefault("sanitize_callback", sanitize_arg)
        return ({"id": {"type": "integer"}} if with_id else {}) | args

    def check_status(self, value: Any, call: Call, key: str, spec: Spec) -> Any:
        """check_status(): the post's current status is always accepted, else the enum decides."""
        post = self.posts.get(to_int(call.get("id"))) if call.get("id") else None
        if post is not None and post.status == value:
            return True
        return schema_error(value, spec, key) or True

    def list_args(self) -> dict[str, Spec]:
        """WP_REST_Posts_Controller::get_collection_params() (the ones emulated)."""
        statuses = {"type": "string", "enum": [*ALL_STATUSES, "any"]}
        return collection_params() | {
            "after": {"type": "string", "format": "date-time"},
            "before": {"type": "string", "format": "date-time"},
            "exclude": {"type": "array", "items": {"type": "integer"}, "default": []},
            "include": {"type": "array", "items": {"type": "integer"}, "default": []},
            "offset": {"type": "integer"},
            "order": {"type": "string", "default": "desc", "enum": ["asc", "desc"]},
            "orderby": {
                "type": "string",
                "default": "date",
                "enum": [
                    "author",
                    "date",
                    "id",
                    "include",
                    "modified",
                    "parent",
                    "relevance",
                    "slug",
                    "include_slugs",
                    "title",
                ],
            },
            "slug": {"type": "array", "items": {"type": "string"}},
            "status": {
                "type": "array",
                "items": statuses,
                "default": "publish",
                "sanitize_callback": post_statuses,
            },
            "categories": {"type": "array", "items": {"type": "integer"}},
        }

    def list_allowed(self, call: Call) -> None:
        if call.get("context") == "edit" and not call.logged_in:
            raise WPError(
                "rest_forbidden_context", "Sorry, you are not allowed to edit posts in this post type.", 401
            )

    def list_posts(self, call: Call) -> Reply:
        """get_items() over WP_Query: status, search, slug, include/exclude, dates, order, paging."""
        orderby, search = call.get("orderby"), call.get("search")
        if orderby == "relevance" and not search:
            raise WPError(
                "rest_no_search_term_defined", "You need to define a search term to order by relevance.", 400
            )
        include = call.get("include") or []
        if orderby == "include" and not include:
            raise WPError(
                "rest_orderby_include_missing_include",
                "You need to define an include parameter to order by include.",
                400,
            )
        statuses = call.get("status") or ["publish"]
        if "any" in statuses:
            # WP_Query: "any" is every status not excluded from search, plus any named beside it.
            allowed = {s for s in ALL_STATUSES if s not in EXCLUDED_FROM_ANY} | set(statuses)
        else:
            allowed = set(statuses)
        found = [p for p in self.posts.values() if p.status in allowed]
        if include:
            found = [p for p in found if p.id in include]
        exclude = call.get("exclude") or []
        found = [p for p in found if p.id not in exclude]
        if call.get("slug"):
            # post_name__in goes through sanitize_title_for_query(), so "预警" finds "%e9%a2%84%e8%ad%a6".
            wanted = {sanitize_title(str(s)) for s in call.get("slug")}
            found = [p for p in found if p.slug in wanted]
        for key, keep in (("after", lambda p, t: p.date > t), ("before", lambda p, t: p.date < t)):
            moment = parse_date(call.get(key)) if call.get(key) else None
            if moment is not None:
                found = [p for p in found if keep(p, moment)]
        categories = call.get("categories")
        if categories:
            wanted_terms = {to_int(c) for c in parse_list(categories)}
            found = [p for p in found if wanted_terms & set(p.categories)]
        terms = search_terms(search) if search else []
        if search:
            found = [p for p in found if search_matches(p, terms) and (call.logged_in or not p.password)]
        found = self.ordered(found, call, include, search or "", terms)
        per_page, page = call.get("per_page"), call.get("page")
        total, offset = len(found), call.get("offset")
        start = offset if offset is not None else (page - 1) * per_page
        pages = math.ceil(total / per_page)
        if page > pages and total > 0:
            raise WPError(
                "rest_post_invalid_page_number",
                "The page number requested is larger than the number of pages available.",
                400,
            )
        context = call.get("context")
        visible = [p for p in found[start : start + per_page] if self.can_read(p, call)]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        links = []
        base = self.rest_url(call, "wp/v2/posts")
        joiner = "&" if "?" in base else "?"
        query = {k: v for k, v in request.args.items(multi=True) if k not in ("page", "rest_route")}
        if page > 1:
            links.append(
                f'<{base}{joiner}{urlencode([*query.items(), ("page", min(page - 1, pages))])}>; rel="prev"'
            )
        if pages > page:
            links.append(f'<{base}{joiner}{urlencode([*query.items(), ("page", page + 1)])}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return Reply([self.view(p, call, context) for p in visible], headers=headers)

    def ordered(
        self, found: list[Post], call: Call, include: list[int], search: str, terms: list[str]
    ) -> list[Post]:
        """WP_Query's ORDER BY; ties (same second) fall back to the ID, in the same direction."""
        orderby, descending = call.get("orderby"), call.get("order") == "desc"
        keys: dict[str, Callable[[Post], Any]] = {
            "date": lambda p: (p.date, p.id),
            "modified": lambda p: (p.modified, p.id),
            "id": lambda p: p.id,
            "title": lambda p: (p.title.casefold(), p.id),
            "slug": lambda p: (p.slug, p.id),
            "author": lambda p: (USER_ID, p.date, p.id),
            "parent": lambda p: (0, p.date, p.id),
        }
        if orderby == "include":
            return sorted(found, key=lambda p: include.index(p.id))
        if orderby == "include_slugs" and call.get("slug"):
            slugs = [sanitize_title(str(s)) for s in call.get("slug")]
            return sorted(found, key=lambda p: slugs.index(p.slug))
        if orderby == "relevance":
            # parse_search_order(), reduced: the whole phrase in the title, then every term, then date.
            def rank(post: Post) -> tuple[int, int, datetime, int]:
                title = post.title.casefold()
                whole = int(search.casefold() in title)
                every = int(all(t.casefold() in title for t in terms))
                return (whole, every, post.date, post.id)

            return sorted(found, key=rank, reverse=True)
        return sorted(found, key=keys.get(orderby, keys["date"]), reverse=descending)

    def read_args(self) -> dict[str, Spec]:
        return {
            "id": {"type": "integer"},
            "context": context_param(),
            "excerpt_length": {"type": "integer"},
            "password": {"type": "string"},
        }

    def existing(self, call: Call) -> Post:
        """get_post(): 404 rest_post_invalid_id for an unknown ID."""
        post = self.posts.get(to_int(call.get("id")))
        if post is None:
            raise WPError("rest_post_invalid_id", "Invalid post ID.", 404)
        return post

    def read_allowed(self, call: Call) -> None:
        post = self.existing(call)
        if call.get("context") == "edit" and not call.logged_in:
            raise WPError("rest_forbidden_context", "Sorry, you are not allowed to edit this post.", 401)
        if post.password and call.query.get("password") and call.query["password"] != post.password:
            raise WPError("rest_post_incorrect_password", "Incorrect post password.", 403)
        if not self.can_read(post, call):
            # respond_to_request(): a permission callback's false becomes rest_forbidden.
            raise WPError(
                "rest_forbidden", "Sorry, you are not allowed to do that.", unauthorized(call.logged_in)
            )

    def read_post(self, call: Call) -> Reply:
        return Reply(self.view(self.existing(call), call, call.get("context")))

    def create_allowed(self, call: Call) -> None:
        """create_item_permissions_check(), in its order."""
        if not php_empty(call.get("id")):
            raise WPError("rest_post_exists", "Cannot create existing post.", 400)
        code = unauthorized(call.logged_in)
        if not php_empty(call.get("author")) and call.get("author") != USER_ID and not call.logged_in:
            raise WPError(
                "rest_cannot_edit_others", "Sorry, you are not allowed to create posts as this user.", code
            )
        if not php_empty(call.get("sticky")) and not call.logged_in:
            raise WPError(
                "rest_cannot_assign_sticky", "Sorry, you are not allowed to make posts sticky.", code
            )
        if not call.logged_in:
            raise WPError(
                "rest_cannot_create", "Sorry, you are not allowed to create posts as this user.", code
            )

    def update_allowed(self, call: Call) -> None:
        """update_item_permissions_check(), in its order."""
        self.existing(call)
        code = unauthorized(call.logged_in)
        if not call.logged_in:
            raise WPError("rest_cannot_edit", "Sorry, you are not allowed to edit this post.", code)

    def delete_args(self) -> dict[str, Spec]:
        force = {
            "type": "boolean",
            "default": False,
            "validate_callback": validate_arg,
            "sanitize_callback": sanitize_arg,
        }
        return {"id": {"type": "integer"}, "force": force}

    def delete_allowed(self, call: Call) -> None:
        self.existing(call)
        if not call.logged_in:
            raise WPError("rest_cannot_delete", "Sorry, you are not allowed to delete this post.", 401)

    def prepared(self, call: Call, existing: Post | None) -> dict[str, Any]:
        """prepare_item_for_database(): which fields the request sets, as WordPress reads them."""
        fields: dict[str, Any] = {}
        title = call.get("title")
        if isinstance(title, str):
            fields["title"] = title
        elif isinstance(title, dict) and not php_empty(title.get("raw")):
            # For the title an empty "raw" is ignored; content and excerpt accept it (isset, not empty).
            fields["title"] = str(title["raw"])
        for key in ("content", "excerpt"):
            value = call.get(key)
            if isinstance(value, str):
                fields[key] = value
            elif isinstance(value, dict) and value.get("raw") is not None:
                fields[key] = str(value["raw"])
        status = call.get("status")
        if status is not None and (existing is None or existing.status != status):
            fields["status"] = status if status in ALL_STATUSES else "draft"
        for key in ("date", "date_gmt"):
            value = call.get(key)
            if not php_empty(value):
                moment = parse_date(value)
                current = (existing.date if key == "date" else existing.date_gmt) if existing else None
                if moment is not None and moment != current:
                    fields["date"] = fields["date_gmt"] = moment
                break
        if (call.has("date") and call.get("date") is None) or (
            call.has("date_gmt") and call.get("date_gmt") is None
        ):
            # Sending a null date resets it: the post's date floats again (or takes the time of saving).
            fields["date"] = fields["date_gmt"] = None
        if call.get("slug") is not None:
            fields["slug"] = call.get("slug")
        author = call.get("author")
        if not php_empty(author) and author != USER_ID:
            raise WPError("rest_invalid_author", "Invalid author ID.", 400)
        password = call.get("password")
        if password is not None:
            fields["password"] = password
            if password and not php_empty(call.get("sticky")):
                raise WPError("rest_invalid_field", "A post can not be sticky and have a password.", 400)
            if password and existing is not None and existing.sticky:
                raise WPError("rest_invalid_field", "A sticky post can not be password protected.", 400)
        if not php_empty(call.get("sticky")) and existing is not None and existing.password:
            raise WPError("rest_invalid_field", "A password protected post can not be set to sticky.", 400)
        for key in ("comment_status", "ping_status"):
            if not php_empty(call.get(key)):
                fields[key] = call.get(key)
        return fields

    def finish(self, post: Post, call: Call) -> None:
        """What create_item() and update_item() do once the row is saved: format, sticky, terms, meta."""
        if not php_empty(call.get("format")):
            post.format = call.get("format")
        if call.get("sticky") is not None:
            post.sticky = bool(call.get("sticky"))
        if call.get("categories") is not None:
            self.set_categories(post, call.get("categories"))
        if call.get("meta") is not None:
            # The post is already saved: a meta error answers 400 but leaves the post in place.
            self.update_meta(post, call.get("meta"), call)

    def draft_slug(self, fields: dict[str, Any], status: str, post_id: int) -> None:
        """create_item()/update_item(): a draft's or pending post's slug is made unique as if published.

        Only when a slug is sent, and on create only when the status ``draft``/``pending`` is sent too
        (the controller's work-around for wp_unique_post_slug() exempting drafts, Trac #52422).
        """
        if fields.get("slug") and status in ("draft", "pending"):
            fields["slug"] = self.unique_slug(sanitize_title(fields["slug"]), post_id, "publish")

    def create_post(self, call: Call) -> Reply:
        if not php_empty(call.get("id")):
            raise WPError("rest_post_exists", "Cannot create existing post.", 400)
        fields = self.prepared(call, None)
        self.draft_slug(fields, fields.get("status", ""), 0)
        post = self.save(None, fields, call)
        self.finish(post, call)
        location = self.rest_url(call, f"wp/v2/posts/{post.id}")
        return Reply(self.view(post, call, "edit"), 201, {"Location": location})

    def update_post(self, call: Call) -> Reply:
        post = self.existing(call)
        fields = self.prepared(call, post)
        self.draft_slug(fields, fields.get("status") or post.status, post.id)
        self.save(post, fields, call)
        self.finish(post, call)
        return Reply(self.view(post, call, "edit"))

    def delete_post(self, call: Call) -> Reply:
        post = self.existing(call)
        if call.get("force"):
            previous = self.view(post, call, "edit")
            del self.posts[post.id]
            call.touched = post.id
            return Reply({"deleted": True, "previous": previous})
        if post.status == "trash":
            raise WPError("rest_already_trashed", "The post has already been deleted.", 410)
        self.trash(post, call)
        return Reply(self.view(post, call, "edit"))


def truncate_slug(slug: str, length: int) -> str:
    """_truncate_post_slug(): cut to ``length`` bytes without splitting an octet, then drop a trailing -."""
    if len(slug) > length:
        if "%" in slug:
            slug = utf8_uri_encode(unquote(slug), length)
        else:
            slug = slug[:length]
    return slug.rstrip("-")


def trimmed_words(content: str) -> str:
    """wp_trim_excerpt(): the content's text (tags and comments stripped), its first 55 words."""
    words = re.split(r"[\n\r\t ]+", strip_tags(content).strip())
    words = [w for w in words if w]
    if len(words) > 55:
        return " ".join(words[:55]) + " [&hellip;]"
    return " ".join(words)


def search_terms(search: str) -> list[str]:
    """WP_Query::parse_search() and parse_search_terms(): phrases kept, short words and stopwords dropped."""
    search = search.replace("\r", "").replace("\n", "")
    found = [m[0] for m in re.finditer(r'".*?("|$)|((?<=[\t ",+])|^)[^\t ",+]+', search)]
    if not found:
        return [search]
    terms = []
    for term in found:
        term = term.strip("\"'") if re.fullmatch(r'".+"', term, re.S) else term.strip("\"' ")
        if not term or (len(term.encode()) == 1 and re.fullmatch(r"[a-z\-]", term, re.I)):
            continue
        if term.lower() in STOPWORDS:
            continue
        terms.append(term)
    # Only short terms or stopwords, or ten terms and more: the whole string is one term.
    return terms if terms and len(terms) <= 9 else [search]


def search_matches(post: Post, terms: list[str]) -> bool:
    """Each term LIKE %term% (case-insensitive collation) in title, excerpt or raw content; "-t" excludes."""
    fields = (post.title.casefold(), post.excerpt.casefold(), post.content.casefold())
    for term in terms:
        exclude = term.startswith("-")
        needle = (term[1:] if exclude else term).casefold()
        hit = any(needle in text for text in fields)
        if hit == exclude:
            return False
    return True


def only_fields(data: Any, fields: list[str]) -> Any:
    """rest_filter_response_fields(): the global ``_fields`` parameter keeps the named (dotted) fields."""
    if isinstance(data, list):
        return [only_fields(item, fields) for item in data]
    if not isinstance(data, dict):
        return data
    wanted: dict[str, list[str]] = {}
    for name in fields:
        head, _, rest = str(name).partition(".")
        wanted.setdefault(head, []).append(rest)
    kept: dict[str, Any] = {}
    for head, rests in wanted.items():
        if head in data:
            whole = "" in rests or not isinstance(data[head], dict)
            kept[head] = data[head] if whole else only_fields(data[head], rests)
    return kept


def php_query(args: Any) -> dict[str, Any]:
    """$_GET as PHP builds it: ``key[]`` collects a list, otherwise the last value wins."""
    out: dict[str, Any] = {}
    for key in args:
        values = args.getlist(key)
        if key.endswith("[]"):
            out[key[:-2]] = values
        else:
            out[key] = values[-1]
    return out


def basic_credentials() -> tuple[str, str] | None:
    """PHP_AUTH_USER / PHP_AUTH_PW: set only for a well-formed ``Basic`` header with a colon."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    name, _, password = decoded.partition(":")
    return name, password


def _injected_error(status: int) -> Response:
    code = "rest_too_many_requests" if status == 429 else "internal_server_error"
    return jsonify({"code": code, "message": "Injected failure.", "data": {"status": status}})


def create_app(
    username: str = "dispatch",
    app_password: str = "sand box pass word",
    public_url: str = "",
    *,
    app_passwords_available: bool = True,
    registered_meta: tuple[str, ...] = (),
    permalink_structure: str = "/%postname%/",
    categories: dict[int, str] | None = None,
    site_name: str = "Sandbox WordPress",
) -> tuple[Flask, EmulatorState]:
    """A stock WordPress 6.1 site with one administrator, ``username``, and its application password.

    ``app_passwords_available=False`` is a site served over plain HTTP that is not a 'local'
    environment: WordPress ignores the Basic credentials there. ``registered_meta`` are post meta keys
    registered with ``show_in_rest`` (single strings); a stock site has none.
    """
    app, state = emulator_app("wordpress", _injected_error)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep WordPress's field order
    site = Site(
        username=username,
        app_password=app_password,
        public_url=public_url,
        app_passwords_available=app_passwords_available,
        registered_meta=tuple(registered_meta),
        permalink_structure=permalink_structure,
        categories=DEFAULT_CATEGORIES if categories is None else categories,
        site_name=site_name,
    )

    def serve(route: str) -> Response:
        method = request.method
        # Global parameter _method, or the X-HTTP-Method-Override header, replaces the method.
        override = request.args.get("_method") or request.headers.get("X-HTTP-Method-Override")
        if override:
            method = override.upper()
        body: dict[str, Any] | None = None
        broken = False
        mimetype = request.mimetype or ""
        raw = request.get_data(cache=True)
        if (mimetype == "application/json" or mimetype.endswith("+json")) and raw.strip():
            try:
                parsed = json.loads(raw)
                body = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                broken = True
        sent = copy.deepcopy(body) if body is not None else dict(request.form)
        call = Call(
            method=method,
            route=route.rstrip("/") or "/",  # rest_api_loaded() untrailingslashits the route
            home=site.public_url or request.host_url.rstrip("/"),
            query=php_query(request.args),
            form=dict(request.form) if body is None else {},
            body=body,
        )
        try:
            reply = site.dispatch(call, basic_credentials(), broken)
        except WPError as err:
            reply = Reply(err.body(), err.status)
        if "_fields" in request.args and reply.status < 400:
            reply.data = only_fields(reply.data, parse_list(request.args["_fields"]))
        if call.touched is not None:
            state.keep(
                {
                    "method": method,
                    "path": request.path,
                    "post_id": call.touched,
                    "body": sent if sent or method != "DELETE" else dict(request.args),
                    "query": dict(request.args),
                    "status": reply.status,
                }
            )
        response = jsonify(reply.data)
        response.status_code = reply.status
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    @app.route("/wp-json/", defaults={"route": ""}, methods=METHODS)
    @app.route("/wp-json/<path:route>", methods=METHODS)
    def rest(route: str) -> Response:
        return serve("/" + route)

    @app.route("/", methods=METHODS)
    def front() -> Response:
        # ?rest_route= reaches the REST API whatever the permalink structure.
        rest_route = request.args.get("rest_route")
        if rest_route is None:
            return Response(f"<!doctype html><title>{site_name}</title>", mimetype="text/html")
        return serve("/" + rest_route.lstrip("/"))

    @app.get("/_sandbox/posts")
    def all_posts() -> Response:
        """Every post, trash included, as the edit context shows it, with the meta actually stored."""
        call = Call("GET", "/", site.public_url or request.host_url.rstrip("/"), {}, {}, None, logged_in=True)
        with site.lock:
            listed = []
            for post in site.posts.values():
                view = site.view(post, call, "edit")
                view["meta"] = dict(post.meta)
                listed.append(view)
        return jsonify(listed)

    return app, state
