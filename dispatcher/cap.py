"""OASIS CAP 1.2 alerts (Common Alerting Protocol, CAP-v1.2-os): read one into an item, write one.

:func:`read_alert` parses an alert with a hardened XML parser, checks it against the rules of
CAP 1.2 written here in code (the project cannot ship the OASIS schema): the namespace, the elements
each block requires and their order, the enumerations, the date-time pattern, references,
identifiers, the scope's companions, and the geometry the schema leaves as plain strings. Every
problem is reported with its line and element path, all of them at once. It then maps the ``info``
block in the requested language onto the fields of :class:`dispatcher.items.Item`.

:func:`write_alert` writes a :class:`CapMessage` as CAP 1.2 XML, checked by the same rules before
it is returned.

Two choices that CAP leaves open:

- **Places.** An item is published to GB/T 2260 administrative divisions. Chinese feeds carry them as
  ``geocode`` entries named ``CPEAS Geographic Code`` (as the China Meteorological Administration's
  observatories write them): mostly 12 digits (the 6-digit division followed by township and village
  digits, ``130602000000``), sometimes the 6 digits alone. A 12-digit code is read as the 6-digit
  division that contains it: a warning may reach a little wider, never narrower. Every ``area`` must
  give such a code, a polygon or a circle; one that gives none is refused, so no part of a warning's
  audience is dropped without anyone noticing. An alert placed by polygons or circles alone leaves
  the divisions to the caller.
- **Expiry.** CAP makes ``expires`` optional; an item cannot be published without one, so an alert
  whose published block has none is refused, naming the element.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from lxml import etree

from dispatcher import geometry
from dispatcher.errors import InvalidItemError
from dispatcher.items import parse_item

NS = "urn:oasis:names:tc:emergency:cap:1.2"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
#: The geocode names whose values are GB/T 2260 division codes (compared case-insensitively).
GB2260_GEOCODE_NAMES = frozenset({"CPEAS Geographic Code"})
#: Larger than any single alert seen in public feeds (a 20 KB embedded image included); a document
#: past this is refused before it is parsed.
MAX_ALERT_BYTES = 1_000_000
#: CAP's default when an ``info`` block names no language (CAP-v1.2-os §3.2.2).
DEFAULT_LANGUAGE = "en-US"

Problems = list[tuple[str, str]]

ContentModel = tuple[tuple[str, int, int | None], ...]


def _sequence(spec: str) -> ContentModel:
    """A schema sequence written as ``"a b? c* d+"``: a once, b at most once, c any number of times,
    d at least once; as (element, fewest, most) with None for unbounded."""
    counts = {"?": (0, 1), "*": (0, None), "+": (1, None)}
    return tuple((word.rstrip("?*+"), *counts.get(word[-1], (1, 1))) for word in spec.split())


# CAP-v1.2.xsd's sequences, in the order the schema requires.
MODELS: dict[str, ContentModel] = {
    "alert": _sequence(
        "identifier sender sent status msgType source? scope restriction? addresses? code* note? references? "
        "incidents? info*"
    ),
    "info": _sequence(
        "language? category+ event responseType* urgency severity certainty audience? eventCode* effective? "
        "onset? expires? senderName? headline? description? instruction? web? contact? parameter* resource* "
        "area*"
    ),
    "eventCode": _sequence("valueName value"),
    "parameter": _sequence("valueName value"),
    "geocode": _sequence("valueName value"),
    "resource": _sequence("resourceDesc mimeType size? uri? derefUri? digest?"),
    "area": _sequence("areaDesc polygon* circle* geocode* altitude? ceiling?"),
}
ENUMERATIONS: dict[str, tuple[str, ...]] = {
    name: tuple(values.split())
    for name, values in {
        "status": "Actual Exercise System Test Draft",
        "msgType": "Alert Update Cancel Ack Error",
        "scope": "Public Restricted Private",
        "category": "Geo Met Safety Security Rescue Fire Health Env Transport Infra CBRNE Other",
        "responseType": "Shelter Evacuate Prepare Execute Avoid Monitor Assess AllClear None",
        "urgency": "Immediate Expected Future Past Unknown",
        "severity": "Extreme Severe Moderate Minor Unknown",
        "certainty": "Observed Likely Possible Unlikely Unknown",
    }.items()
}
PUBLISHED_TYPES = ("Alert", "Update", "Cancel")
TIMES = frozenset({"sent", "effective", "onset", "expires"})
# The schema's pattern for every time, \d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d, on top of
# xs:dateTime (whose lexical form has no comma, so the comma in the class never matches): no "Z",
# no fractional seconds, always an offset.
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})([-+])([0-9]{2}):([0-9]{2})"
)
_LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")  # xs:language
_INTEGER = re.compile(r"[+-]?[0-9]+")  # xs:integer
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")  # xs:decimal
# CAP-v1.2-os §3.2.1: identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)".
_NOT_IN_NAMES = re.compile(r"[\s,<&]")
# A DOCTYPE in the prolog, after an optional byte order mark, declaration, comments and spaces.
_DOCTYPE = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s|<\?.*?\?>|<!--.*?-->)*<!DOCTYPE", re.DOTALL)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_AUTHORITY = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DIVISION = re.compile(r"[0-9]{6}(?:[0-9]{6})?")


@dataclass(frozen=True)
class CapReference:
    """An earlier message, named as CAP names it: ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: datetime


@dataclass(frozen=True)
class CapAlert:
    """A CAP 1.2 alert as the dispatcher takes it in.

    ``document`` holds the :class:`~dispatcher.items.Item` fields of the published ``info`` block,
    all but ``author`` (the person submitting it) and, when the alert names its places by polygons
    or circles only, ``areas`` (the caller chooses the divisions). It is None for a Cancel whose
    ``info`` is absent or is not in the requested language. The polygons, circles and other geocodes
    are those of the published block; ``other_infos`` maps each other language to its blocks.
    """

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    references: tuple[CapReference, ...]
    note: str | None
    language: str | None
    document: dict[str, Any] | None
    polygons: list[list[tuple[float, float]]]
    circles: list[tuple[float, float, float]]
    other_geocodes: list[tuple[str, str]]
    other_infos: dict[str, tuple[dict[str, Any], ...]]


@dataclass(frozen=True, kw_only=True)
class CapMessage:
    """What :func:`write_alert` writes: the alert's header and one ``info`` block.

    ``areas`` are (description, geocode values) pairs, written as geocodes named ``geocode_name``;
    polygons and circles are drawn in the first area, which they describe with its codes. Times
    must be aware; they are written with their own offset, to the second.
    """

    identifier: str
    sender: str
    sent: datetime
    msg_type: str
    status: str = "Actual"
    scope: str = "Public"
    references: tuple[CapReference, ...] = ()
    note: str | None = None
    language: str = "zh-CN"
    # "Safety" is CAP's "general emergency and public safety"; a weather or health warning is better
    # filed as "Met" or "Health", which the caller knows and this module does not.
    categories: tuple[str, ...] = ("Safety",)
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    expires: datetime
    sender_name: str | None = None
    web: str | None = None
    areas: tuple[tuple[str, tuple[str, ...]], ...]
    geocode_name: str = "CPEAS Geographic Code"
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()


# ---------------------------------------------------------------------------------------- reading


def read_alert(
    data: bytes,
    *,
    language: str = "zh-CN",
    source: str = "alert",
    geocode_names: Collection[str] = GB2260_GEOCODE_NAMES,
    statuses: Collection[str] = ("Actual",),
) -> CapAlert:
    """Read one CAP 1.2 alert, raising :class:`InvalidItemError` that names every problem's line.

    The ``info`` block in ``language`` (compared case-insensitively) is the one published. Only
    alerts whose status is in ``statuses`` are read, so an Exercise or a Test never reaches the
    public as a real warning by accident; Ack and Error messages are refused (nothing to publish).
    """
    root = _parse(data, source)
    problems = _validate(root)
    if problems:
        raise InvalidItemError(source, problems)
    return _map(root, language, source, geocode_names, statuses)


def validate_alert(data: bytes, *, source: str = "alert") -> None:
    """Check ``data`` against CAP 1.2 alone (no mapping onto an item), raising on any problem."""
    problems = _validate(_parse(data, source))
    if problems:
        raise InvalidItemError(source, problems)


def _parse(data: bytes, source: str) -> Any:
    if len(data) > MAX_ALERT_BYTES:
        raise InvalidItemError(
            source,
            [("(document)", f"is {len(data):,} bytes; alerts over {MAX_ALERT_BYTES:,} bytes are refused")],
        )
    # CAP needs no DTD; a DOCTYPE is how entity expansion ("billion laughs") and external entities
    # arrive. Refused before parsing when the prolog shows one, and after, whatever the encoding.
    doctype = _DOCTYPE.match(data)
    if doctype:
        line = data[: doctype.end()].count(b"\n") + 1
        raise InvalidItemError(source, [(f"line {line}: (document)", "has a DOCTYPE; CAP alerts carry none")])
    # No entity is expanded, no DTD or network resource loaded, no tree past libxml2's safe limits.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidItemError(
            source, [(f"line {exc.lineno}: (document)", f"is not well-formed XML: {exc.msg}")]
        ) from None
    if root.getroottree().docinfo.doctype:
        raise InvalidItemError(source, [("line 1: (document)", "has a DOCTYPE; CAP alerts carry none")])
    return root


def _validate(root: Any) -> Problems:
    """Every way ``root`` breaks CAP 1.2, in document order."""
    problems: Problems = []
    namespace, local = _split(root.tag)
    if namespace != NS or local != "alert":
        found = f"{{{namespace}}}{local}" if namespace else local
        _add(problems, root, local, f"the root element is {found}; a CAP 1.2 alert is {{{NS}}}alert")
        return problems
    _check_element(root, "alert", problems)
    scope = _child_text(root, "scope")
    if scope == "Restricted" and not _child_text(root, "restriction").strip():
        _add(problems, _child(root, "scope"), "alert/restriction", "is required when scope is Restricted")
    if scope == "Private" and not _child_text(root, "addresses").strip():
        _add(problems, _child(root, "scope"), "alert/addresses", "is required when scope is Private")
    for area in root.iterfind(f"{{{NS}}}info/{{{NS}}}area"):
        ceiling = _child(area, "ceiling")
        if ceiling is not None and _child(area, "altitude") is None:
            _add(problems, ceiling, "alert/info/area/ceiling", "may only be given with an altitude")
    return sorted(problems, key=lambda problem: _line_of(problem[0]))


def _check_element(element: Any, path: str, problems: Problems) -> None:
    for name in element.attrib:
        _add(problems, element, path, f"has the attribute {name!r}; CAP elements take none")
    local = _split(element.tag)[1]
    model = MODELS.get(local)
    children = [child for child in element if isinstance(child.tag, str)]
    if model is None:
        if children:
            _add(problems, element, path, "holds elements; CAP puts text here")
        else:
            _check_value(element, local, path, problems)
        return
    if (element.text or "").strip() or any((node.tail or "").strip() for node in element):
        _add(problems, element, path, "holds text between its elements")
    _check_sequence(element, children, path, model, problems)
    names = {name for name, _, _ in model}
    for child in children:
        namespace, name = _split(child.tag)
        if namespace == NS and name in names:
            _check_element(child, f"{path}/{name}", problems)


def _check_sequence(
    parent: Any,
    children: list[Any],
    path: str,
    model: ContentModel,
    problems: Problems,
) -> None:
    """The schema's ``sequence``: each element in its place, as often as allowed, none missing."""
    position = {name: index for index, (name, _, _) in enumerate(model)}
    present = {_split(child.tag)[1] for child in children if _split(child.tag)[0] == NS}
    # The schema's xmldsig wildcard closes the alert's sequence. (libxml2 lets an info block follow
    # a signature; the schema does not, and neither does this reader.)
    signature_allowed = parent.tag == f"{{{NS}}}alert"
    counts = [0] * len(model)
    misplaced: set[str] = set()  # reported out of order once, so never reported missing too
    at = 0
    signed = False
    for child in children:
        namespace, name = _split(child.tag)
        if signature_allowed and namespace == XMLDSIG:
            signed = True
            continue
        if namespace != NS or name not in position:
            label = name if namespace == NS else f"{{{namespace}}}{name}" if namespace else name
            _add(problems, child, f"{path}/{label}", "is not a CAP 1.2 element here")
            continue
        if signed:
            _add(problems, child, f"{path}/{name}", "comes after the signature, which must come last")
            continue
        index = position[name]
        most = model[index][2]
        if index == at and most is not None and counts[index] >= most:
            _add(problems, child, f"{path}/{name}", f"occurs more than {most} time(s)")
            continue
        if index < at:
            _add(problems, child, f"{path}/{name}", f"is out of order: it belongs before {model[at][0]}")
            misplaced.add(name)
            continue
        skipped = [
            required
            for required, fewest, _ in model[at:index]
            if fewest and counts[position[required]] == 0 and required not in misplaced
        ]
        later = [required for required in skipped if required in present]
        if later:
            # What belongs here comes further down: this element is early, the other is not missing.
            _add(problems, child, f"{path}/{name}", f"is out of order: {later[0]} comes before it")
            misplaced.add(name)
            continue
        for missing in skipped:
            _add(problems, child, f"{path}/{missing}", f"is missing (required before {name})")
        at = index
        counts[index] += 1
    for index in range(at, len(model)):
        name, fewest, _ = model[index]
        if fewest and counts[index] == 0 and name not in present:
            _add(problems, parent, f"{path}/{name}", "is missing")


def _check_value(element: Any, local: str, path: str, problems: Problems) -> None:
    text = _text(element)
    choices = ENUMERATIONS.get(local)
    if choices is not None:
        # The enumerations are xs:string: no whitespace is trimmed, and case counts.
        if text not in choices:
            _add(problems, element, path, f"{text!r} is not one of {', '.join(choices)}")
    elif local in TIMES:
        try:
            parse_time(text.strip())
        except ValueError as exc:
            _add(problems, element, path, str(exc))
    elif local in ("identifier", "sender"):
        message = _name_problem(text)
        if message:
            _add(problems, element, path, message)
    elif local == "references":
        try:
            parse_references(text)
        except ValueError as exc:
            _add(problems, element, path, str(exc))
    elif local == "language" and text.strip() and not _LANGUAGE.fullmatch(text.strip()):
        # An empty language is the schema's default, en-US.
        _add(problems, element, path, f"{text!r} is not a language tag like zh-CN")
    elif local in ("web", "uri"):
        message = _uri_problem(" ".join(text.split()))
        if message:
            _add(problems, element, path, message)
    elif local == "size" and not _INTEGER.fullmatch(text.strip()):
        _add(problems, element, path, f"{text!r} is not a whole number of bytes")
    elif local in ("altitude", "ceiling") and not _DECIMAL.fullmatch(text.strip()):
        _add(problems, element, path, f"{text!r} is not a decimal number of feet")
    elif local == "polygon":
        try:
            geometry.parse_polygon(text)
        except geometry.GeometryError as exc:
            _add(problems, element, path, str(exc))
    elif local == "circle":
        try:
            geometry.parse_circle(text)
        except geometry.GeometryError as exc:
            _add(problems, element, path, str(exc))


def _uri_problem(text: str) -> str | None:
    """What makes ``text`` no xs:anyURI, as libxml2 reads one: a URI reference (RFC 3986) once
    characters URIs may not hold are set aside, so a colon before any slash must end a scheme, and
    a percent sign starts an escape, and brackets enclose an IPv6 host."""
    head = re.split(r"[/?#]", text, maxsplit=1)[0]
    if ":" in head and not _SCHEME.fullmatch(head.partition(":")[0]):
        return f"{text!r} is not a URI: {head.partition(':')[0]!r} before ':' is not a scheme"
    if _BAD_ESCAPE.search(text):
        return f"{text!r} is not a URI: '%' must start an escape like %20"
    if text.count("#") > 1:
        return f"{text!r} is not a URI: it has two '#'"
    authority = _AUTHORITY.match(text)
    outside = text[: authority.start(1)] + text[authority.end(1) :] if authority else text
    if "[" in outside or "]" in outside:
        return f"{text!r} is not a URI: brackets belong around an IPv6 host only"
    return None


def _name_problem(text: str) -> str | None:
    if not text:
        return "is empty"
    bad = _NOT_IN_NAMES.search(text)
    if bad:
        return f"{text!r} contains {bad[0]!r}; CAP forbids spaces, commas, '<' and '&' here"
    return None


def parse_time(text: str) -> datetime:
    """Read a CAP time: ``2026-07-01T18:00:00+08:00``, its offset kept (``-00:00`` is UTC)."""
    match = _TIME.fullmatch(text)
    if not match:
        hint = ""
        if text.endswith(("Z", "z")):
            hint = " (CAP forbids 'Z': UTC is written -00:00)"
        elif "." in text:
            hint = " (CAP times have no fractions of a second)"
        raise ValueError(f"{text!r} is not a CAP date and time like 2026-07-01T18:00:00+08:00{hint}")
    year, month, day, hour, minute, second, sign, off_hours, off_minutes = match.groups()
    offset_minutes = int(off_hours) * 60 + int(off_minutes)
    if int(off_minutes) > 59 or offset_minutes > 14 * 60:
        raise ValueError(f"{text!r} has the offset {sign}{off_hours}:{off_minutes}, beyond ±14:00")
    tz = (
        UTC
        if offset_minutes == 0
        else timezone((-1 if sign == "-" else 1) * timedelta(minutes=offset_minutes))
    )
    # xs:dateTime allows 24:00:00, the first instant of the next day.
    midnight = (hour, minute, second) == ("24", "00", "00")
    try:
        moment = datetime(
            int(year), int(month), int(day), 0 if midnight else int(hour), int(minute), int(second), tzinfo=tz
        )
    except ValueError:
        raise ValueError(f"{text!r} is not a real date and time") from None
    return moment + timedelta(days=1) if midnight else moment


def format_time(moment: datetime) -> str:
    """Write an aware time as CAP does: to the second, with its offset; UTC as ``-00:00``.

    CAP-v1.2-os §3.3.2: "Alphabetic timezone designators such as 'Z' MUST NOT be used. The timezone
    for UTC MUST be represented as '-00:00'."
    """
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"{moment.isoformat()} has no offset; CAP times carry one")
    if offset % timedelta(minutes=1):
        raise ValueError(f"{moment.isoformat()} has an offset in seconds, which CAP cannot write")
    minutes = int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    sign = "+" if minutes > 0 else "-"
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{sign}{hours:02d}:{rest:02d}"
    )


def parse_references(text: str) -> tuple[CapReference, ...]:
    """Read ``references``: whitespace-separated ``sender,identifier,sent`` triples."""
    found = []
    for token in text.split():
        parts = token.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise ValueError(f"{token!r} is not 'sender,identifier,sent'")
        found.append(CapReference(parts[0], parts[1], parse_time(parts[2])))
    return tuple(found)


def references_text(references: Sequence[CapReference]) -> str:
    """Write ``references`` as CAP does, one ``sender,identifier,sent`` triple after another."""
    return " ".join(f"{ref.sender},{ref.identifier},{format_time(ref.sent)}" for ref in references)


@dataclass
class _Block:
    """One ``info`` block read into item fields, with what could not be mapped."""

    element: Any
    language: str
    document: dict[str, Any]
    polygons: list[list[tuple[float, float]]]
    circles: list[tuple[float, float, float]]
    other_geocodes: list[tuple[str, str]]
    problems: Problems


def _map(
    root: Any, language: str, source: str, names: Collection[str], statuses: Collection[str]
) -> CapAlert:
    problems: Problems = []
    status = _child_text(root, "status")
    msg_type = _child_text(root, "msgType")
    references = parse_references(_child_text(root, "references"))
    if status not in statuses:
        _add(
            problems,
            _child(root, "status"),
            "alert/status",
            f"{status!r} is not read here (only {', '.join(sorted(statuses))}): "
            "it must not reach the public as a real warning",
        )
    if msg_type not in PUBLISHED_TYPES:
        _add(problems, _child(root, "msgType"), "alert/msgType", f"{msg_type!r} has nothing to publish")
    elif msg_type != "Alert" and not references:
        _add(
            problems,
            _child(root, "msgType"),
            "alert/references",
            f"is missing: {_a(msg_type)} names the alert it replaces or withdraws",
        )
    sender = _child_text(root, "sender")
    blocks = [_read_block(info, sender, names) for info in root.iterfind(f"{{{NS}}}info")]
    chosen = [block for block in blocks if block.language.casefold() == language.casefold()]
    published: _Block | None = None
    if msg_type == "Cancel":
        # A withdrawal is never held back by its text: without a clean block it simply has none.
        if len(chosen) == 1 and not chosen[0].problems:
            published = chosen[0]
    elif not blocks:
        _add(problems, root, "alert/info", f"is missing: {_a(msg_type)} needs the warning's text")
    elif not chosen:
        found = ", ".join(dict.fromkeys(block.language for block in blocks))
        _add(
            problems,
            blocks[0].element,
            "alert/info/language",
            f"no info block is in {language}; found {found}",
        )
    elif len(chosen) > 1:
        lines = ", ".join(str(block.element.sourceline) for block in chosen)
        _add(
            problems,
            chosen[0].element,
            "alert/info",
            f"{len(chosen)} blocks are in {language} (lines {lines}); one is published",
        )
    else:
        published = chosen[0]
        problems += published.problems
    if problems:
        raise InvalidItemError(source, sorted(problems, key=lambda problem: _line_of(problem[0])))
    others: dict[str, tuple[dict[str, Any], ...]] = {}
    for block in blocks:
        if block is not published:
            others[block.language] = (*others.get(block.language, ()), block.document)
    return CapAlert(
        identifier=_child_text(root, "identifier"),
        sender=sender,
        sent=parse_time(_child_text(root, "sent").strip()),
        status=status,
        msg_type=msg_type,
        scope=_child_text(root, "scope"),
        references=references,
        note=_optional(_child(root, "note")),
        language=published.language if published else None,
        document=published.document if published else None,
        polygons=published.polygons if published else [],
        circles=published.circles if published else [],
        other_geocodes=published.other_geocodes if published else [],
        other_infos=others,
    )


def _read_block(info: Any, sender: str, names: Collection[str]) -> _Block:
    problems: Problems = []
    folded = {name.casefold() for name in names}
    language = _child_text(info, "language").strip() or DEFAULT_LANGUAGE
    event = _one_line(_child_text(info, "event"))
    headline = _one_line(_child_text(info, "headline"))
    description = _child_text(info, "description").strip()
    sender_name = _one_line(_child_text(info, "senderName"))
    document: dict[str, Any] = {
        "kind": "warning",
        "title": headline or event,
        "event": event or None,
        "severity": _child_text(info, "severity"),
        "urgency": _child_text(info, "urgency"),
        "certainty": _child_text(info, "certainty"),
        "department": sender_name or sender,
    }
    if description or headline:
        document["body"] = description or headline
    else:
        _add(
            problems,
            info,
            "alert/info/description",
            "is missing (and so is headline): an item needs its text",
        )
    instruction = _child_text(info, "instruction").strip()
    if instruction:
        document["instruction"] = instruction
    expires = _child(info, "expires")
    if expires is None:
        _add(problems, info, "alert/info/expires", "is missing: a published item needs an expiry")
    else:
        document["expires"] = parse_time(_text(expires).strip())
    codes: dict[str, Any] = {}  # each division code, and the first area that names it
    polygons: list[list[tuple[float, float]]] = []
    circles: list[tuple[float, float, float]] = []
    other_geocodes: list[tuple[str, str]] = []
    areas = list(info.iterfind(f"{{{NS}}}area"))
    if not areas:
        _add(problems, info, "alert/info/area", "is missing: the dispatcher needs to know where to publish")
    for area in areas:
        placed = False
        for polygon in area.iterfind(f"{{{NS}}}polygon"):
            polygons.append(geometry.parse_polygon(_text(polygon)))
            placed = True
        for circle in area.iterfind(f"{{{NS}}}circle"):
            circles.append(geometry.parse_circle(_text(circle)))
            placed = True
        others: list[str] = []
        for geocode in area.iterfind(f"{{{NS}}}geocode"):
            name = _child_text(geocode, "valueName").strip()
            value = _child_text(geocode, "value").strip()
            if name.casefold() not in folded:
                other_geocodes.append((name, value))
                others.append(f"{name}={value}")
            elif _DIVISION.fullmatch(value):
                # A 12-digit code lies within the 6-digit division it starts with.
                codes.setdefault(value[:6], area)
                placed = True
            else:
                _add(
                    problems,
                    _child(geocode, "value"),
                    "alert/info/area/geocode/value",
                    f"{value!r} is not a 6-digit GB/T 2260 code nor a 12-digit code starting with one",
                )
                placed = True  # refused above already; not "unplaced" as well
        if not placed:
            known = " or ".join(repr(name) for name in sorted(names))
            seen = f"; its geocodes are {', '.join(others)}" if others else ""
            _add(
                problems,
                area,
                "alert/info/area",
                f"{_one_line(_child_text(area, 'areaDesc'))!r} has no division code "
                f"(a geocode named {known}), polygon or circle{seen}",
            )
    if codes:
        document["areas"] = list(codes)
    if not problems:
        sources = _sources(info, areas, bool(headline), bool(description), bool(sender_name))
        problems += _item_problems(document, sources, codes)
    return _Block(info, language, document, polygons, circles, other_geocodes, problems)


def _sources(
    info: Any, areas: list[Any], headline: bool, description: bool, sender_name: bool
) -> dict[str, tuple[Any, str]]:
    """Where each item field comes from: the element (for its line) and its path."""

    def element(name: str) -> tuple[Any, str]:
        found = _child(info, name)
        return (info if found is None else found, f"alert/info/{name}")

    return {
        "title": element("headline" if headline else "event"),
        "body": element("description" if description else "headline"),
        "event": element("event"),
        "instruction": element("instruction"),
        "expires": element("expires"),
        "severity": element("severity"),
        "urgency": element("urgency"),
        "certainty": element("certainty"),
        "department": element("senderName")
        if sender_name
        else (_child(info.getparent(), "sender"), "alert/sender"),
        "areas": (areas[0] if areas else info, "alert/info/area"),
        "(item)": (info, "alert/info"),
    }


def _item_problems(
    document: dict[str, Any], sources: dict[str, tuple[Any, str]], code_areas: dict[str, Any]
) -> Problems:
    """What :class:`~dispatcher.items.Item` refuses in ``document``, named by the CAP element (for
    a refused division code, the area that gives it)."""
    # Stand-ins for what the caller supplies: the author, and the areas of an alert placed by
    # geometry alone.
    trial = {**document, "author": "reader", "areas": document.get("areas", ["110000"])}
    try:
        parse_item(trial)
    except InvalidItemError as exc:
        problems: Problems = []
        for field, message in exc.problems:
            key = field.split(".")[0]
            if key == "areas":
                named = [area for code, area in code_areas.items() if repr(code) in message]
                for area in dict.fromkeys(named) or [sources["areas"][0]]:
                    _add(problems, area, "alert/info/area", message)
                continue
            element, path = sources.get(key, sources["(item)"])
            _add(problems, element, path, message)
        return problems
    return []


# ---------------------------------------------------------------------------------------- writing


def write_alert(message: CapMessage) -> bytes:
    """Write ``message`` as a CAP 1.2 alert (UTF-8, with the XML declaration).

    Raises ValueError when the message would not be a valid alert, naming what is wrong.
    """
    if message.msg_type not in PUBLISHED_TYPES:
        raise ValueError(f"msg_type {message.msg_type!r} is not one of {', '.join(PUBLISHED_TYPES)}")
    if message.msg_type != "Alert" and not message.references:
        raise ValueError(f"{_a(message.msg_type)} needs the references of the alert it replaces or withdraws")
    if not message.areas:
        raise ValueError("an alert needs at least one area")
    polygons = [geometry.polygon_text(polygon) for polygon in message.polygons]
    circles = [geometry.circle_text(circle) for circle in message.circles]
    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    _put(root, "identifier", message.identifier)
    _put(root, "sender", message.sender)
    _put(root, "sent", format_time(message.sent))
    _put(root, "status", message.status)
    _put(root, "msgType", message.msg_type)
    _put(root, "scope", message.scope)
    _put(root, "note", message.note)
    if message.references:
        _put(root, "references", references_text(message.references))
    info = _put(root, "info", None, always=True)
    _put(info, "language", message.language)
    for category in message.categories:
        _put(info, "category", category)
    _put(info, "event", message.event)
    _put(info, "urgency", message.urgency)
    _put(info, "severity", message.severity)
    _put(info, "certainty", message.certainty)
    _put(info, "expires", format_time(message.expires))
    _put(info, "senderName", message.sender_name)
    _put(info, "headline", message.headline)
    _put(info, "description", message.description)
    _put(info, "instruction", message.instruction)
    _put(info, "web", message.web)
    for number, (description, codes) in enumerate(message.areas):
        area = _put(info, "area", None, always=True)
        _put(area, "areaDesc", description, always=True)
        if number == 0:
            for text in polygons:
                _put(area, "polygon", text)
            for text in circles:
                _put(area, "circle", text)
        for code in codes:
            geocode = _put(area, "geocode", None, always=True)
            _put(geocode, "valueName", message.geocode_name, always=True)
            _put(geocode, "value", code, always=True)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    problems = _validate(_parse(data, "message"))
    if problems:
        raise ValueError(
            "not a valid CAP 1.2 alert: " + "; ".join(f"{field}: {text}" for field, text in problems)
        )
    return data


def identifier_for(sender_prefix: str, uid: str, revision: int) -> str:
    """The CAP identifier of an item's revision: ``<prefix>.<uid>.<revision>``, the same every time.

    Each revision is its own CAP message (an Update names the one before in its references).
    """
    if revision < 1:
        raise ValueError(f"revision {revision} is not a revision number (1, 2, …)")
    for label, text in (("sender_prefix", sender_prefix), ("uid", uid)):
        problem = _name_problem(text)
        if problem:
            raise ValueError(f"{label} {problem}")
    return f"{sender_prefix}.{uid}.{revision}"


def _put(parent: Any, name: str, text: str | None, *, always: bool = False) -> Any:
    if text is None and not always:
        return None
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if text is not None:
        try:
            element.text = text
        except ValueError:
            # lxml refuses what XML 1.0 cannot hold (NUL, most control characters).
            raise ValueError(f"{name}: {text!r} holds characters XML cannot carry") from None
    return element


# ---------------------------------------------------------------------------------------- the tree


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _text(element: Any) -> str:
    # The element's own text nodes (CDATA included), not the text of comments inside it.
    return "".join(element.xpath("text()"))


def _child(element: Any, name: str) -> Any:
    return element.find(f"{{{NS}}}{name}")


def _child_text(element: Any, name: str) -> str:
    child = _child(element, name)
    return "" if child is None else _text(child)


def _optional(element: Any) -> str | None:
    if element is None:
        return None
    return _text(element).strip() or None


def _one_line(text: str) -> str:
    """A one-line field as a reader sees it: XML line breaks and runs of spaces are layout."""
    return " ".join(text.split())


def _add(problems: Problems, element: Any, path: str, message: str) -> None:
    line = getattr(element, "sourceline", None) or "?"
    problems.append((f"line {line}: {path}", message))


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'AEIOU' else 'a'} {word}"


def _line_of(field: str) -> int:
    number = field.removeprefix("line ").partition(":")[0]
    return int(number) if number.isdigit() else 0
