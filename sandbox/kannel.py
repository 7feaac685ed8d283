"""An emulator of Kannel 1.4.5's smsbox: the HTTP ``sendsms`` interface, delivery reports and inbound SMS.

Real peer: Kannel 1.4.5 (bearerbox + smsbox, Debian's ``kannel`` 1.4.5-12) behind an SMS centre. Sources:

- the user guide, https://www.kannel.org/download/1.4.5/userguide-1.4.5/userguide.html: "Using the HTTP
  interface to send SMS messages" (the CGI variables, the reply codes ``202 0: Accepted for delivery`` and
  ``202 3: Queued for later delivery``), the ``smsbox`` group (``sendsms-chars`` default ``"0123456789 +-"``,
  ``global-sender``, ``mo-recode``, ``http-request-retry`` default 0, ``http-queue-delay`` default 10 s,
  ``immediate-sendsms-reply``, ``black-list-regex``), the ``sendsms-user`` group (``max-messages``,
  ``concatenation``), the ``smsc`` group (``denied-prefix``), "Parameters (Escape Codes)" and the
  ``dlr-mask`` bits (1 delivered, 2 not delivered, 4 queued on SMSC, 8 SMSC success, 16 SMSC failure);
- Kannel's source, as kept in the public SVN mirror github.com/pruiz/kannel: ``gw/smsbox.c``
  (``smsbox_req_sendsms``, ``smsbox_req_handle``, ``smsbox_sendsms_post``, ``get_x_kannel_from_headers``,
  ``delayed_http_reply``, ``send_message``, ``url_result_thread``, ``obey_request_thread``),
  ``gw/urltrans.c`` (``urltrans_fill_escape_codes``), ``gw/sms.c`` (``sms_split``, ``fields_to_dcs``),
  ``gw/bb_smscconn.c`` (``smsc2_rout``, ``bb_smscconn_sent``, ``bb_smscconn_send_failed``,
  ``handle_split``), ``gw/smscconn.c`` (``smscconn_send``, ``smscconn_usable``), ``gw/smsc/smsc_fake.c``,
  ``gw/dlr.c`` (``create_dlr_from_msg``), ``gwlib/charset.c`` with ``gwlib/latin1_to_gsm.h``
  (``charset_utf8_to_gsm``) and ``gwlib/octstr.c`` (``octstr_url_encode``);
- GSM 03.38 (3GPP TS 23.038) for the 7-bit alphabet and its extension table;
- above all, a real Kannel 1.4.5 observed answering (bearerbox, smsbox and the ``fakesmsc`` SMS centre on
  loopback): every answer text and status below, the headers, which receivers of a batch get the text,
  the part sizes, the delivery reports and their escape values, the retries and the inbound URLs were
  seen there. Where that mirror (2014 SVN) and 1.4.5 differ, the observed 1.4.5 is followed (``%e``).

What is emulated, for ``GET /cgi-bin/sendsms`` (``POST`` with a ``text/plain`` or
``application/octet-stream`` body and ``X-Kannel-*`` headers too):

- the checks and answers in smsbox's order: login (``username``/``user``, ``password``/``pass``) → ``403
  Authorization failed for sendsms``; ``to`` → ``400 Missing receiver number, rejected`` / ``400 Empty
  receiver number not allowed, rejected``; ``udh``; receivers with characters outside ``sendsms-chars`` or
  on the black list are dropped, all of them → ``400 Number(s) has/have been denied by white- and/or
  black-lists.``; sender → ``400 Sender missing and no global set, rejected``; then ``account``,
  ``dlr-url``, ``dlr-mask``, ``mclass``, ``pid``, ``rpi``, ``alt-dcs``, ``mwi``, ``coding``, ``compress``,
  ``validity``, ``deferred``, ``priority`` (``400 <Field> field misformed, rejected``; 1.4.5 was seen to
  take a ``dlr-mask`` up to 66) and ``charset`` (``400 Charset or body misformed, rejected``). Numbers are
  read as C's ``sscanf("%d")`` reads them: a value without digits is "not given", ``3x`` is 3. No text is
  an empty message, accepted. A form-encoded ``POST`` is ``400 Invalid content-type``: smsbox reads a
  ``POST``'s variables from ``X-Kannel-*`` headers only;
- the answer is bearerbox's acknowledgement of the FIRST receiver's message (smsbox keys the waiting
  client by the message id all receivers share, the first ack answers): ``202 0: Accepted for delivery``,
  ``202 3: Queued for later delivery`` while the SMS centre is down, ``403 Not routable. Do not try
  again.`` when no SMS centre takes that number (``denied`` prefixes) — the other receivers still get
  the text. With ``immediate_sendsms_reply`` smsbox's own text answers instead: ``202 Sent.``, ``Denied
  receivers are: …``, ``Message splits: N``;
- splitting: a text over one message is cut to ``max-messages`` parts (1, Kannel's default, truncates
  it); with ``concatenation`` the parts carry a concatenation UDH, which costs room: 153 septets or 134
  octets (67 UCS-2 characters) a part instead of 160 / 140 (70). GSM 03.38 septets are counted, the
  extension table costs two and a part never ends inside an escape; characters GSM cannot show become
  ``?`` (a four-byte UTF-8 character becomes four of them, as Kannel's converter reads it byte by byte);
- delivery reports to ``dlr-url``, ONE set per phone whatever its parts: bearerbox asks the SMS centre
  for a report on the first part only and confirms the whole message once (type 8 ``ACK/``), the SMS
  centre reports the delivery (type 1); an unroutable number gets type 16 ``NACK/no SMSC`` if the mask
  has 2 or 16. Every escape of ``urltrans_fill_escape_codes`` is filled as 1.4.5 fills it for a report.
  Only answers 200 and 202 count; anything else (or no answer) is retried ``http_request_retry`` times,
  ``http_queue_delay`` seconds apart, then dropped — by default never retried. Reports go out through
  smsbox's HTTP caller (``sandbox/caller.py``): at most ``max_pending_requests`` (``max-pending-requests``,
  default 512) calls in flight, over keep-alive connections, the rest waiting in memory in order, so a
  slow ``dlr-url`` makes them queue, never the sendsms answers;
- ``POST /_sandbox/mo`` ``{"from", "text", "to"?, "coding"?, "udh"?}`` plays a phone texting the gateway:
  ``mo_url`` is called as an ``sms-service`` ``get-url`` (``max-messages = 0``: no reply SMS). A text
  GSM cannot carry arrives as UCS-2: without ``mo-recode`` ``%a``/``%b`` are its UTF-16BE bytes,
  url-encoded, with ``%c`` 2 and ``%C`` ``UTF-16BE``; with it, UTF-8 with ``%c`` 0 and ``%C`` ``UTF-8``.

Every phone the text reached is recorded once in ``/_sandbox/received``: ``to``, ``from``, ``text`` (what the
phone shows: the parts joined, or the truncated text), ``coding`` (0, 1 or 2 as sent), ``charset``,
``dlr_mask`` (-1 when not given, Kannel's "undefined"), ``dlr_url``, ``parts``, ``truncated``, ``udh`` (hex),
``account``, ``smsc``, ``meta_data``. Sandbox-only: ``GET``/``POST /_sandbox/smsc`` ``{"online": bool}``
takes the SMS centre down (requests are then queued) and back up (the queue is delivered); ``GET
/_sandbox/callbacks`` lists every URL called back (``url``, ``status``, ``attempt``, ``at``); ``GET
/_sandbox/stats`` counts what was taken and sent: ``sendsms`` (``requests``, ``accepted``, ``refused``,
``last_accepted_at``, a Unix time), ``phones`` (``reached``, ``parts``, ``queued_at_smsc``, ``unroutable``),
``reports`` and ``mo`` (``queued``, ``in_flight``, ``retrying``, ``pending``, ``sent``, ``failed``,
``attempts``, ``by_status``) and ``caller`` (``max_pending_requests``, ``in_flight_high``,
``connections_opened``). ``/_sandbox/reset`` forgets the phones and the sendsms counts but leaves the SMS
centre's queue, the calls and their counts alone (reports still in flight keep going).

At a million phones every record costs gigabytes: ``record="counts"`` (``SANDBOX_SMS_RECORD=counts`` for the
sandbox server) keeps counts and the last ``keep_last`` (100) entries only. ``/_sandbox/received`` then
answers ``{"record": "counts", "reached", "parts", "queued_at_smsc", "unroutable", "last": [...]}`` and
``/_sandbox/callbacks`` ``{"record": "counts", "calls", "by_status", "reports", "mo", "last": [...]}``.

Not emulated: XML and HTML ``POST`` bodies (answered ``400 Invalid content-type`` here, parsed by the real
one), ``sendota``, XML-RPC, white lists, ``faked-sender``/``default-sender``, replies to inbound texts,
keyword routing of inbound texts, delivery failures reported by the SMS centre (types 2 and 4).
"""

from __future__ import annotations

import codecs
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask, Response, jsonify, request

from sandbox.caller import HTTP_TIMEOUT, MAX_PENDING_REQUESTS, Batch, Caller
from sandbox.emulator import EmulatorState, emulator_app

SERVER = "Kannel/1.4.5"
UNDEFINED = -1  # Kannel's SMS_PARAM_UNDEFINED: a numeric field that was not given
MAX_SMS_OCTETS = 140  # gw/sms.h
CATENATE_UDH_LEN = 5  # gw/sms.c: the concatenation information element, without the UDH length octet
ACCOUNT_MAX_LEN = 64  # gw/smsbox.c
BEARERBOX_MAX_PARTS = 255  # gw/smscconn.c: bearerbox splits again, into at most 255 parts
DLR_DELIVERED, DLR_FAILED, DLR_SMSC_SUCCESS, DLR_SMSC_FAILED = 1, 2, 8, 16

# ---------------------------------------------------------------------------------------------------
# GSM 03.38: the default alphabet (ESC at 0x1B left out) and the extension table reached through ESC.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"
# latin1_to_gsm.h puts LATIN SMALL LETTER C WITH CEDILLA on GSM 0x09, which phones show as Ç.
GSM_LOOKALIKE = {"ç": "Ç"}


@dataclass(frozen=True)
class Unit:
    """One character as a phone receives it: what it shows and what it costs (septets or octets)."""

    shown: str
    cost: int


def gsm_units(data: bytes) -> list[Unit]:
    """The GSM characters Kannel makes of UTF-8 text, read as ``charset_utf8_to_gsm`` reads it.

    It decodes two- and three-byte sequences only: any other byte, a four-byte sequence's included, is
    taken as a Latin-1 character on its own, so an emoji becomes four unrepresentable characters.
    """
    units: list[Unit] = []
    pos, length = 0, len(data)
    while pos < length:
        first = data[pos]
        if first & 0xE0 == 0xC0:
            if pos + 1 >= length:
                break  # an incomplete sequence at the end is skipped
            point = ((first & 0x1F) << 6) | (data[pos + 1] & 0x3F)
            pos += 2
        elif first & 0xF0 == 0xE0:
            if pos + 2 >= length:
                break
            point = ((first & 0x0F) << 12) | ((data[pos + 1] & 0x3F) << 6) | (data[pos + 2] & 0x3F)
            pos += 3
        else:
            point = first
            pos += 1
        units.append(gsm_unit(chr(point)))
    return units


def gsm_unit(char: str) -> Unit:
    if char in GSM_LOOKALIKE:
        return Unit(GSM_LOOKALIKE[char], 1)
    if char in GSM_BASIC:
        return Unit(char, 1)
    if char in GSM_EXTENSION:
        return Unit(char, 2)
    return Unit("?", 1)  # charset.c: NRP, a character GSM 03.38 cannot represent


def representable_in_gsm(text: str) -> bool:
    return all(gsm_unit(char).shown == char for char in text)


def octet_units(data: bytes) -> list[Unit]:
    """8-bit and UCS-2 texts are split by octets, even inside a UTF-16 character (sms.c does)."""
    return [Unit(chr(octet), 1) for octet in data]


def part_room(coding: int, udh_octets: int) -> int:
    """Room for text in one message next to a UDH of that many octets (``sms_split``)."""
    if coding == 0:
        return max((MAX_SMS_OCTETS - udh_octets) * 8 // 7, 0)
    return max(MAX_SMS_OCTETS - udh_octets, 0)


def split_units(units: list[Unit], coding: int, udh: bytes, catenate: bool, max_messages: int) -> list[int]:
    """Where ``sms_split`` cuts: the end index of each part; the last part ends the (kept) text.

    A text over one message with concatenation leaves room for the concatenation UDH in every part; the
    part reaching ``max_messages`` is the last one whatever is left, so the rest is dropped.
    """
    room = part_room(coding, len(udh))
    if sum(unit.cost for unit in units) > room and catenate:
        room = part_room(coding, (len(udh) or 1) + CATENATE_UDH_LEN)
    ends: list[int] = []
    start = 0
    while True:
        left = sum(unit.cost for unit in units[start:])
        last = left <= room or len(ends) + 1 == max_messages
        end, used = start, 0
        while end < len(units) and used + units[end].cost <= room:
            used += units[end].cost
            end += 1
        ends.append(end)
        start = end
        if last:
            return ends


@dataclass(frozen=True)
class PhoneText:
    """What a phone receives for one text: what it shows and in how many messages."""

    shown: str
    parts: int
    truncated: bool


def phone_text(msgdata: bytes, coding: int, udh: bytes, catenate: bool, max_messages: int) -> PhoneText:
    """Split as smsbox does, then as bearerbox does again: what the phone shows, in how many parts."""
    units = gsm_units(msgdata) if coding == 0 else octet_units(msgdata)
    ends = split_units(units, coding, udh, catenate, max_messages)
    kept = units[: ends[-1]]
    if catenate:
        # smsbox joins the parts again and bearerbox splits them (into the same parts, or one).
        parts = len(split_units(kept, coding, udh, True, BEARERBOX_MAX_PARTS))
    else:
        parts = len(ends)
    if coding == 0:
        shown = "".join(unit.shown for unit in kept)
    else:
        data = bytes(ord(unit.shown) for unit in kept)
        # UCS-2 is UTF-16BE on the air (a half character left by a cut shows as U+FFFD); 8-bit as Latin-1
        shown = data.decode("utf-16-be", errors="replace") if coding == 2 else data.decode("latin-1")
    return PhoneText(shown, parts, len(kept) < len(units))


# ---------------------------------------------------------------------------------------------------
# Escape codes (urltrans.c), filled from a message as Kannel holds it.

URL_SAFE = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_.!~*'()")


def url_encode(data: bytes) -> str:
    """``octstr_url_encode``: a space becomes ``+``, the unreserved marks stay, the rest ``%XX``."""
    return "".join(
        "+" if octet == 0x20 else chr(octet) if octet in URL_SAFE else f"%{octet:02X}" for octet in data
    )


def split_words(data: bytes) -> list[bytes]:
    """``octstr_split_words``: on C's white space, byte by byte (so inside UCS-2 text too)."""
    return [word for word in re.split(rb"[ \t\n\v\f\r]+", data) if word]


@dataclass
class Message:
    """The fields of Kannel's ``Msg`` that the escape codes read."""

    sender: str
    receiver: str
    msgdata: bytes = b""
    coding: int = UNDEFINED
    charset: str = ""
    udh: bytes = b""
    service: str = ""
    smsc_id: str = ""
    smsc_number: str = ""
    foreign_id: str = ""
    dlr_mask: int = UNDEFINED
    dlr_url: str = ""
    account: str = ""
    binfo: str = ""
    meta_data: str = ""
    mclass: int = UNDEFINED
    mwi: int = UNDEFINED
    alt_dcs: int = UNDEFINED
    compress: int = UNDEFINED
    validity: int = UNDEFINED
    deferred: int = UNDEFINED
    time: int = field(default_factory=lambda: int(time.time()))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def data_coding_scheme(msg: Message) -> int:
    """``fields_to_dcs``; like Kannel it settles an undefined coding on the message as it goes."""
    if msg.coding == UNDEFINED:
        msg.coding = 1 if msg.udh else 0
    if msg.mwi != UNDEFINED:
        if msg.mwi & 0x04:
            return (msg.mwi & 0x03) | 0xC0
        dcs = (msg.mwi & 0x03) | 0x08
        if not msg.msgdata:
            return dcs | 0xC0
        return dcs | (0xD0 if msg.coding == 0 else 0xE0)
    if msg.alt_dcs in (0, UNDEFINED) or msg.coding == 2 or msg.compress == 1:
        dcs = 0x20 if msg.compress == 1 else 0
        if msg.mclass != UNDEFINED:
            dcs |= 0x10 | msg.mclass
        return dcs | (msg.coding << 2)
    return 0xF0 | (msg.coding << 2) | (1 if msg.mclass == UNDEFINED else msg.mclass)


def meta_value(meta_data: str, group: str, name: str) -> str:
    """A value from meta-data written ``?group?name=value&…``."""
    for match in re.finditer(r"\?([^?]*)\?([^?]*)", meta_data):
        if match.group(1) == group:
            for pair in match.group(2).split("&"):
                key, _, value = pair.partition("=")
                if key == name:
                    return value
    return ""


def plus_for_00(number: str) -> str:
    """``%q``/``%Q``: a leading ``00`` becomes an encoded ``+``."""
    if number.startswith("00"):
        return "%2B" + url_encode(number[2:].encode())
    return url_encode(number.encode())


def fill_escapes(pattern: str, msg: Message) -> str:
    """``urltrans_fill_escape_codes`` as Kannel 1.4.5 answers it (``%e`` is 1.4.5's, ``%x`` is nobody's)."""
    words = split_words(msg.msgdata)
    next_word = 1
    out: list[str] = []
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char != "%" or pos + 1 >= len(pattern):
            out.append(char)  # a lone % at the end is kept as it is
            pos += 1
            continue
        code = pattern[pos + 1]
        pos += 2
        if code == "a":
            out.append("+".join(url_encode(word) for word in words))
        elif code in "Ab":
            out.append(url_encode(msg.msgdata))
        elif code == "B":
            out.append(url_encode(msg.binfo.encode()))
        elif code == "c":
            out.append(str(msg.coding))
        elif code == "C":
            out.append(msg.charset or {1: "8-BIT", 2: "UTF-16BE"}.get(msg.coding, "UTF-8"))
        elif code == "d":
            out.append(url_encode(str(msg.dlr_mask).encode()))
        elif code == "D":
            out.append(url_encode(msg.meta_data.encode()))
        elif code == "e":
            out.append(msg.msgdata.hex().upper())  # observed on 1.4.5: the text in hex
        elif code == "f":
            out.append(url_encode(msg.smsc_number.encode()))
        elif code == "F":
            out.append(url_encode(msg.foreign_id.encode()))
        elif code == "i":
            out.append(url_encode(msg.smsc_id.encode()))
        elif code == "I":
            out.append(msg.id)
        elif code == "k":
            out.append(url_encode(words[0]) if words else "")
        elif code == "m":
            out.append(url_encode(str(msg.mclass).encode()))
        elif code == "M":
            out.append(url_encode(str(msg.mwi).encode()))
        elif code == "n":
            out.append(url_encode(msg.service.encode()))
        elif code == "o":
            out.append(url_encode(msg.account.encode()))
        elif code == "O":
            out.append(f"{data_coding_scheme(msg):02d}")  # decimal, though a DCS is read in hex
        elif code == "p":
            out.append(url_encode(msg.receiver.encode()))
        elif code == "P":
            out.append(url_encode(msg.sender.encode()))
        elif code == "q":
            out.append(plus_for_00(msg.receiver))
        elif code == "Q":
            out.append(plus_for_00(msg.sender))
        elif code == "r":
            out.append("+".join(url_encode(word) for word in words[next_word:]))
        elif code == "R":
            out.append(url_encode(msg.dlr_url.encode()))
        elif code == "s":
            if next_word < len(words):
                out.append(url_encode(words[next_word]))
                next_word += 1
        elif code == "S":
            if next_word < len(words):
                # urltrans.c: '*' becomes '~' and this one word is NOT url-encoded
                out.append(words[next_word].replace(b"*", b"~").decode("latin-1"))
                next_word += 1
        elif code == "t":
            out.append(time.strftime("%Y-%m-%d+%H:%M:%S", time.gmtime(msg.time)))
        elif code == "T":
            out.append(str(msg.time))
        elif code == "u":
            out.append(url_encode(msg.udh))
        elif code == "v":
            if msg.validity != UNDEFINED:
                out.append(str((msg.validity - int(time.time())) // 60))
        elif code == "V":
            if msg.deferred != UNDEFINED:
                out.append(str((msg.deferred - int(time.time())) // 60))
        elif code == "#":
            group_end = pattern.find("#", pos)
            name_end = pattern.find("#", group_end + 1) if group_end >= 0 else -1
            if name_end >= 0:
                value = meta_value(msg.meta_data, pattern[pos:group_end], pattern[group_end + 1 : name_end])
                out.append(url_encode(value.encode()))
                pos = name_end + 1
        elif code == "%":
            out.append("%")
        else:
            out.append("%" + code)  # an unknown escape is left in the URL
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# The sendsms request.


def scan_int(value: bytes | str | None) -> int:
    """``sscanf(value, "%d", &field)``: leading digits count, no digits leave the field undefined."""
    if value is None:
        return UNDEFINED
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else UNDEFINED


def text_of(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


class Rejected(Exception):
    """smsbox refused the request: its status and answer text."""

    def __init__(self, status: int, answer: str) -> None:
        super().__init__(answer)
        self.status = status
        self.answer = answer


@dataclass
class Submission:
    """A request smsbox accepted: the message all its receivers get."""

    username: str
    sender: str
    receivers: list[str]
    denied: list[str]
    msgdata: bytes
    coding: int
    charset: str | None
    udh: bytes
    dlr_mask: int
    dlr_url: str
    account: str
    binfo: str
    meta_data: str
    smsc: str
    mclass: int
    validity: int
    deferred: int
    priority: int


NUMERIC_LIMITS = (
    # (field, lowest, highest, answer): smsbox_req_handle's range checks, in its order after dlr-mask
    ("mclass", -1, 3, "MClass"),
    ("pid", -1, 255, "PID"),
    ("rpi", -1, 2, "RPI"),
    ("alt-dcs", -1, 1, "Alt-DCS"),
    ("mwi", -1, 7, "MWI"),
    ("coding", -1, 2, "Coding"),
    ("compress", -1, 1, "Compress"),
)


def recode(body: bytes, charset: str, coding: int) -> bytes:
    """``charset_processing``: a given charset is converted to UTF-8 (7-bit) or UTF-16BE (UCS-2)."""
    if not charset or coding not in (0, 2):
        return body
    try:
        text = body.decode(codecs.lookup(charset).name)
    except (LookupError, UnicodeDecodeError) as error:
        raise Rejected(400, "Charset or body misformed, rejected") from error
    return text.encode("utf-8" if coding == 0 else "utf-16-be")


@dataclass(frozen=True)
class Gateway:
    """The configuration the emulated bearerbox and smsbox run with."""

    username: str
    password: str
    max_messages: int
    concatenation: bool
    denied: tuple[str, ...]
    black_list: tuple[str, ...]
    global_sender: str | None
    sendsms_chars: str

    def check(self, fields: dict[str, bytes], to: str, text: bytes, udh: bytes | None) -> Submission:
        """``smsbox_req_handle``'s checks in its order; raises :class:`Rejected`."""
        # the first octet must be the length of the rest (an empty UDH passes: Kannel reads -1 + 1)
        if udh is not None and len(udh) != (udh[0] + 1 if udh else 0):
            raise Rejected(400, "UDH field misformed, rejected")
        if udh is not None and len(udh) > MAX_SMS_OCTETS:
            raise Rejected(400, "UDH field is too long, rejected")
        legal = frozenset(self.sendsms_chars)
        allowed: dict[str, None] = {}  # dicts: in order, each number once
        denied: dict[str, None] = {}
        for number in to.split():
            refused = not legal.issuperset(number) or number.startswith(self.black_list)
            (denied if refused else allowed)[number] = None
        if not allowed:
            raise Rejected(400, "Number(s) has/have been denied by white- and/or black-lists.")
        sender = text_of(fields.get("from")) or self.global_sender
        if not sender:
            raise Rejected(400, "Sender missing and no global set, rejected")
        account = text_of(fields.get("account")) or ""
        if len(account.encode()) > ACCOUNT_MAX_LEN or any(char in account for char in "[]\n\r"):
            raise Rejected(400, "Account field misformed or too long, rejected")
        dlr_url = text_of(fields.get("dlr-url")) or ""
        if dlr_url and not dlr_url.lower().startswith(("http://", "https://")):
            raise Rejected(400, "DLR-URL field misformed, rejected")
        dlr_mask = scan_int(fields.get("dlr-mask"))
        if not -1 <= dlr_mask <= 66:  # observed on 1.4.5: 66 passes, 67 is refused
            raise Rejected(400, "DLR-Mask field misformed, rejected")
        numbers = {name: scan_int(fields.get(name)) for name, *_ in NUMERIC_LIMITS}
        for name, lowest, highest, label in NUMERIC_LIMITS:
            if not lowest <= numbers[name] <= highest:
                raise Rejected(400, f"{label} field misformed, rejected")
        coding = numbers["coding"]
        if coding == UNDEFINED:
            coding = 1 if udh else 0  # "Compatibility Mode": a UDH means 8-bit
        validity, deferred = scan_int(fields.get("validity")), scan_int(fields.get("deferred"))
        if validity < -1:
            raise Rejected(400, "Validity field misformed, rejected")
        if deferred < -1:
            raise Rejected(400, "Deferred field misformed, rejected")
        priority = scan_int(fields.get("priority"))
        if priority != UNDEFINED and not 0 <= priority <= 3:
            raise Rejected(400, "Priority field misformed, rejected")
        charset = text_of(fields.get("charset"))
        msgdata = recode(text, charset or "", coding)
        return Submission(
            username=self.username,
            sender=sender,
            receivers=list(allowed),
            denied=list(denied),
            msgdata=msgdata,
            coding=coding,
            charset=charset,
            udh=udh or b"",
            dlr_mask=dlr_mask,
            dlr_url=dlr_url,
            account=account,
            binfo=text_of(fields.get("binfo")) or "",
            meta_data=text_of(fields.get("meta-data")) or "",
            smsc=text_of(fields.get("smsc")) or "",
            mclass=numbers["mclass"],
            validity=validity,
            deferred=deferred,
            priority=priority,
        )

    def routable(self, number: str) -> bool:
        """``smscconn_usable``: the one SMS centre takes every number but its ``denied-prefix`` ones."""
        return not any(number.startswith(prefix) for prefix in self.denied)


# ---------------------------------------------------------------------------------------------------


def answer(status: int, body: str) -> Response:
    """smsbox's reply: the text as ``text/html`` with its no-cache headers."""
    response = Response(body, status=status)
    response.headers["Content-type"] = "text/html"
    response.headers["Pragma"] = "no-cache"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Server"] = SERVER
    return response


INJECTED_ANSWERS = {
    403: "Not routable. Do not try again.",
    500: "Sending failed.",
    503: "Temporal failure, try again later.",
}


def injected(status: int) -> Response:
    return answer(status, INJECTED_ANSWERS.get(status, INJECTED_ANSWERS[503]))


def cgi_fields() -> dict[str, bytes]:
    """The query's variables as raw bytes, the first of a repeated name winning (``http_cgi_variable``)."""
    fields: dict[str, bytes] = {}
    query = request.query_string.decode("latin-1")
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
        fields.setdefault(name, value.encode("latin-1"))
    return fields


X_KANNEL = {
    # get_x_kannel_from_headers: header → the CGI variable it stands for
    "x-kannel-from": "from",
    "x-kannel-to": "to",
    "x-kannel-username": "username",
    "x-kannel-password": "password",
    "x-kannel-smsc": "smsc",
    "x-kannel-udh": "udh",
    "x-kannel-dlr-url": "dlr-url",
    "x-kannel-account": "account",
    "x-kannel-binfo": "binfo",
    "x-kannel-coding": "coding",
    "x-kannel-pid": "pid",
    "x-kannel-mwi": "mwi",
    "x-kannel-mclass": "mclass",
    "x-kannel-alt-dcs": "alt-dcs",
    "x-kannel-compress": "compress",
    "x-kannel-validity": "validity",
    "x-kannel-deferred": "deferred",
    "x-kannel-dlr-mask": "dlr-mask",
    "x-kannel-rpi": "rpi",
    "x-kannel-priority": "priority",
    "x-kannel-meta-data": "meta-data",
}


def header_fields() -> dict[str, bytes]:
    fields: dict[str, bytes] = {}
    for name, value in request.headers.items():
        key = X_KANNEL.get(name.lower())
        if key is not None:
            fields[key] = value.strip().encode("latin-1", errors="replace")
    if "udh" in fields:
        raw = fields["udh"].decode("latin-1")
        try:
            fields["udh"] = bytes.fromhex(raw)  # "in hex format", else url-encoded
        except ValueError:
            fields["udh"] = urllib.parse.unquote_to_bytes(raw)
    return fields


@dataclass
class Traffic:
    """What the emulated gateway took: sendsms requests and the phones they reached (``/_sandbox/stats``)."""

    requests: int = 0
    accepted: int = 0
    last_accepted_at: float | None = None
    reached: int = 0
    parts: int = 0
    queued_at_smsc: int = 0
    unroutable: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sendsms": {
                "requests": self.requests,
                "accepted": self.accepted,
                "refused": self.requests - self.accepted,
                "last_accepted_at": self.last_accepted_at,
            },
            "phones": {
                "reached": self.reached,
                "parts": self.parts,
                "queued_at_smsc": self.queued_at_smsc,
                "unroutable": self.unroutable,
            },
        }


RECORDS = ("all", "counts")


def create_app(
    username: str = "dispatch",
    password: str = "sandbox",
    report_delay: float = 0.05,
    mo_url: str | None = None,
    *,
    max_messages: int = 1,
    concatenation: bool = True,
    denied: tuple[str, ...] = (),
    black_list: tuple[str, ...] = (),
    mo_recode: bool = False,
    global_sender: str | None = None,
    sendsms_chars: str = "0123456789 +-",
    smsc_id: str = "fake",
    smsc_online: bool = True,
    http_request_retry: int = 0,
    http_queue_delay: float = 10.0,
    immediate_sendsms_reply: bool = False,
    mo_receiver: str = "12379",
    max_pending_requests: int = MAX_PENDING_REQUESTS,
    http_timeout: float = HTTP_TIMEOUT,
    record: str = "all",
    keep_last: int = 100,
) -> tuple[Flask, EmulatorState]:
    """The emulated smsbox, configured as its ``kannel.conf`` groups would be.

    ``max_messages`` and ``concatenation`` are the ``sendsms-user`` group's (Kannel defaults to 1 and
    false; this project's gateway sets concatenation); ``denied`` the SMS centre's ``denied-prefix``
    (bearerbox finds no route: 403 for the first receiver, type 16 reports); ``black_list`` prefixes
    smsbox drops (its ``black-list-regex`` ``^prefix``); ``mo_recode``, ``global_sender``,
    ``sendsms_chars``, ``http_request_retry``, ``http_queue_delay``, ``immediate_sendsms_reply``,
    ``max_pending_requests`` and ``http_timeout`` (``http-timeout``) the ``smsbox`` group's; ``smsc_id``
    the SMS centre's id (``%i``); ``mo_receiver`` the number phones text. ``report_delay`` is how long
    the SMS centre takes to report (0: at once).

    Sandbox-only: ``record="counts"`` keeps counts and the last ``keep_last`` entries instead of every
    phone and every call (see the module's docstring).
    """
    if max_messages < 1:
        # smsbox then writes nothing to bearerbox and so never answers the client: not worth emulating.
        raise ValueError("max_messages must be at least 1")
    if record not in RECORDS:
        raise ValueError(f"record must be one of {RECORDS}, not {record!r}")
    if keep_last < 0:
        raise ValueError("keep_last must not be negative")
    app, state = emulator_app("kannel", injected)
    gateway = Gateway(
        username,
        password,
        max_messages,
        concatenation,
        tuple(denied),
        tuple(black_list),
        global_sender,
        sendsms_chars,
    )
    counts_only = record == "counts"
    caller = Caller(
        max_pending_requests,
        http_request_retry,
        http_queue_delay,
        http_timeout,
        log_last=keep_last if counts_only else None,
        user_agent=SERVER,
    )
    for kind in ("report", "mo"):
        caller.tally(kind)  # counted from the start, at zero
    online = {"up": smsc_online}
    queue: list[tuple[Submission, str]] = []
    traffic = Traffic()

    def forget() -> None:
        fresh = Traffic(queued_at_smsc=len(queue))
        for name in vars(fresh):
            setattr(traffic, name, getattr(fresh, name))

    state.on_reset.append(forget)
    if counts_only:
        state.summary = lambda: {"record": "counts", **traffic.as_dict()["phones"]}

    def report_kinds(sub: Submission, parts: int | None) -> tuple[int, ...]:
        """The report types one phone gets, in the order they are made (``parts`` None: no route)."""
        if not sub.dlr_url or sub.dlr_mask in (UNDEFINED, 0):
            return ()
        if parts is None:
            # bb_smscconn_send_failed with "no SMSC"
            return (DLR_SMSC_FAILED,) if sub.dlr_mask & (DLR_FAILED | DLR_SMSC_FAILED) else ()
        # observed: a concatenated text's delivery (first part) is reported before the whole's success
        concatenated = gateway.concatenation and parts > 1
        order = (DLR_DELIVERED, DLR_SMSC_SUCCESS) if concatenated else (DLR_SMSC_SUCCESS, DLR_DELIVERED)
        return tuple(kind for kind in order if sub.dlr_mask & kind)

    def reports_for(sub: Submission, phone: str, parts: int | None) -> list[Message]:
        """The delivery reports bearerbox and the SMS centre make for one phone (``parts`` None: no route)."""
        kinds = report_kinds(sub, parts)
        if not kinds:
            return []
        base = Message(
            sender=sub.sender,
            receiver=phone,
            service=sub.username,
            smsc_id=smsc_id,
            dlr_url=sub.dlr_url,
            # 1.4.5 keeps the requested mask in the report's meta-data
            meta_data=f"?orig_msg?dlr_mask={sub.dlr_mask}&",
        )
        if parts is None:
            # no SMS centre, hence no smsc-id
            failed = replace(
                base,
                dlr_mask=DLR_SMSC_FAILED,
                msgdata=b"NACK/no SMSC",
                smsc_id=sub.smsc,
                meta_data=sub.meta_data + base.meta_data,
            )
            return [failed]
        smsc_message_id = str(uuid.uuid4())
        made: dict[int, Message] = {
            # handle_split: the SMSC success of a concatenated text names the first part's SMSC id
            DLR_SMSC_SUCCESS: replace(
                base,
                dlr_mask=DLR_SMSC_SUCCESS,
                msgdata=b"ACK/",
                foreign_id=smsc_message_id if gateway.concatenation and parts > 1 else "",
                meta_data=sub.meta_data + base.meta_data,
            ),
            # the fake SMS centre's report carries no text; sms_split asks it for the first part only
            DLR_DELIVERED: replace(base, dlr_mask=DLR_DELIVERED, foreign_id=smsc_message_id),
        }
        return [made[kind] for kind in kinds]

    def report(sub: Submission, phones: list[str], parts: int) -> None:
        """Hand the phones' reports to smsbox's caller; the routable ones were delivered in ``parts``."""

        def parts_of(phone: str) -> int | None:
            return parts if gateway.routable(phone) else None

        def urls(phone: str) -> list[str]:
            made = reports_for(sub, phone, parts_of(phone))
            for msg in made:
                msg.time, msg.id = int(time.time()), str(uuid.uuid4())
            return [fill_escapes(msg.dlr_url, msg) for msg in made]

        unroutable = sum(not gateway.routable(phone) for phone in phones) if gateway.denied else 0
        size = (len(phones) - unroutable) * len(report_kinds(sub, parts)) + unroutable * len(
            report_kinds(sub, None)
        )
        if size:
            caller.enqueue(Batch("report", phones, urls, size, due=time.monotonic() + report_delay))

    def deliver(sub: Submission, phones: list[str]) -> PhoneText:
        """The SMS centre takes the text for these phones: record what each phone shows (lock held)."""
        shown = phone_text(sub.msgdata, sub.coding, sub.udh, gateway.concatenation, max_messages)
        entry = {
            "from": sub.sender,
            "text": shown.shown,
            "coding": sub.coding,
            "charset": sub.charset,
            "dlr_mask": sub.dlr_mask,
            "dlr_url": sub.dlr_url or None,
            "parts": shown.parts,
            "truncated": shown.truncated,
            "udh": sub.udh.hex(),
            "account": sub.account,
            "smsc": sub.smsc or None,
            "meta_data": sub.meta_data or None,
        }
        # counts only: the record keeps the last few phones, so the others are not written out at all
        for phone in phones[max(len(phones) - keep_last, 0) :] if counts_only else phones:
            state.keep({"to": phone, **entry})
        if counts_only:
            del state.received[: max(len(state.received) - keep_last, 0)]
        traffic.reached += len(phones)
        traffic.parts += len(phones) * shown.parts
        return shown

    def submit(sub: Submission) -> tuple[int, str]:
        """Hand every receiver's message to bearerbox; the first one's acknowledgement is the answer."""
        routable = [gateway.routable(phone) for phone in sub.receivers]
        with state.lock:
            if online["up"]:
                delivered = [phone for phone, ok in zip(sub.receivers, routable, strict=True) if ok]
                reported = sub.receivers  # smsc2_rout: "Cannot find SMSCConn": a type 16 report, discarded
            else:
                # smsc2_rout: no active SMS centre, queued; the unroutable are reported at once
                delivered = []
                reported = [phone for phone, ok in zip(sub.receivers, routable, strict=True) if not ok]
                queue.extend((sub, phone) for phone, ok in zip(sub.receivers, routable, strict=True) if ok)
                traffic.queued_at_smsc = len(queue)
            parts = deliver(sub, delivered).parts if delivered else 0
            traffic.unroutable += routable.count(False)
            traffic.accepted += 1
            traffic.last_accepted_at = time.time()
        report(sub, reported, parts)
        if immediate_sendsms_reply:
            text = "Sent."
            if sub.denied:
                text += " Denied receivers are: " + " ".join(sub.denied)
            # send_message returns how many parts smsbox's own split made
            units = gsm_units(sub.msgdata) if sub.coding == 0 else octet_units(sub.msgdata)
            splits = len(split_units(units, sub.coding, sub.udh, gateway.concatenation, max_messages))
            if splits > 1:
                text += f" Message splits: {splits}"
            return 202, text
        # delayed_http_reply, for the first acknowledgement back
        if not routable[0]:
            return 403, "Not routable. Do not try again."
        if not online["up"]:
            return 202, "3: Queued for later delivery"
        return 202, "0: Accepted for delivery"

    @app.route("/cgi-bin/sendsms", methods=["GET", "POST"])
    def sendsms() -> Response:
        with state.lock:
            traffic.requests += 1
        try:
            if request.method == "POST":
                return answer(*sendsms_post())
            fields = cgi_fields()
            login = fields.get("username", fields.get("user"))
            secret = fields.get("password", fields.get("pass"))
            if login is None or secret is None or (text_of(login), text_of(secret)) != (username, password):
                return answer(403, "Authorization failed for sendsms")
            for name, deprecated in (("dlr-url", "dlrurl"), ("dlr-mask", "dlrmask")):
                if name not in fields and deprecated in fields:
                    fields[name] = fields[deprecated]  # the old spelling counts when the new one is missing
            to = fields.get("to")
            if to is None:
                return answer(400, "Missing receiver number, rejected")
            if not to:
                return answer(400, "Empty receiver number not allowed, rejected")
            receivers = to.decode("utf-8", "replace")
            sub = gateway.check(fields, receivers, fields.get("text", b""), fields.get("udh"))
            return answer(*submit(sub))
        except Rejected as refusal:
            return answer(refusal.status, refusal.answer)

    def sendsms_post() -> tuple[int, str]:
        """``smsbox_sendsms_post``: the text is the body, everything else ``X-Kannel-*`` headers."""
        kind = (request.mimetype or "").lower()
        if kind not in ("text/plain", "application/octet-stream"):
            return 400, "Invalid content-type"
        fields = header_fields()
        if (text_of(fields.get("username")), text_of(fields.get("password"))) != (username, password):
            return 403, "Authorization failed for sendsms"
        to = fields.get("to")
        if to is None:
            return 400, "Missing receiver(s) number(s), rejected"
        if not to:
            return 400, "Empty receiver number not allowed, rejected"
        if scan_int(fields.get("coding")) == UNDEFINED:
            fields["coding"] = b"1" if kind == "application/octet-stream" else b"0"
        charset = request.mimetype_params.get("charset")
        if charset:
            fields["charset"] = charset.encode()
        sub = gateway.check(fields, to.decode("utf-8", "replace"), request.get_data(), fields.get("udh"))
        return submit(sub)

    @app.route("/_sandbox/smsc", methods=["GET", "POST"])
    def smsc() -> dict[str, Any]:
        """Take the SMS centre down (bearerbox queues) or up (the queue is delivered)."""
        if request.method == "POST":
            wanted = bool((request.get_json(force=True) or {}).get("online", True))
            batches: list[tuple[Submission, list[str], int]] = []
            with state.lock:
                online["up"] = wanted
                while wanted and queue:
                    # the queue in order, one batch per request its phones came from
                    sub, phones = queue[0][0], []
                    while queue and queue[0][0] is sub:
                        phones.append(queue.pop(0)[1])
                    batches.append((sub, phones, deliver(sub, phones).parts))
                traffic.queued_at_smsc = len(queue)
            for sub, phones, parts in batches:
                report(sub, phones, parts)
        with state.lock:
            return {"online": online["up"], "queued": len(queue)}

    @app.get("/_sandbox/callbacks")
    def callbacks() -> Response:
        """Every URL called back (reports and inbound texts), with the status it got; or, counts only,
        the counts and the last calls."""
        if not counts_only:
            return jsonify(caller.calls())
        stats = caller.stats()
        by_status: dict[str, int] = {}
        for kind in ("report", "mo"):
            for status, count in stats[kind]["by_status"].items():
                by_status[status] = by_status.get(status, 0) + count
        return jsonify(
            {
                "record": "counts",
                "calls": stats["report"]["attempts"] + stats["mo"]["attempts"],
                "by_status": by_status,
                "reports": stats["report"],
                "mo": stats["mo"],
                "last": caller.calls(),
            }
        )

    @app.get("/_sandbox/stats")
    def stats() -> Response:
        """Counts for a benchmark: requests taken, phones reached, reports queued, sent and failed."""
        with state.lock:
            taken = traffic.as_dict()
        calls = caller.stats()
        return jsonify(
            {
                "record": record,
                **taken,
                "reports": calls.pop("report"),
                "mo": calls.pop("mo"),
                "caller": calls,
            }
        )

    @app.post("/_sandbox/mo")
    def inbound() -> tuple[dict[str, Any], int]:
        """A phone texts the gateway: call ``mo_url`` as an ``sms-service`` ``get-url``."""
        data = request.get_json(force=True) or {}
        if not mo_url:
            return {"error": "no MO URL configured"}, 409
        if "from" not in data or not isinstance(data.get("text"), str):
            return {"error": "give 'from' and 'text'"}, 400
        text: str = data["text"]
        coding = int(data.get("coding", 0 if representable_in_gsm(text) else 2))
        msgdata = {0: text.encode("utf-8"), 1: text.encode("latin-1", "replace")}.get(
            coding, text.encode("utf-16-be")
        )
        msg = Message(
            # obey_request_thread swaps the numbers: %p is the phone, %P the number it texted (or the
            # global sender when one is set)
            sender=global_sender or str(data.get("to", mo_receiver)),
            receiver=str(data["from"]),
            msgdata=msgdata,
            coding=coding,
            udh=bytes.fromhex(data.get("udh", "")),
            service="default",
            smsc_id=smsc_id,
        )
        if mo_recode and coding == 2:
            # smsbox's mo-recode: UCS-2 to UTF-8, coding 7-bit, charset "UTF-8"
            msg.msgdata = msgdata.decode("utf-16-be", errors="replace").encode("utf-8")
            msg.coding, msg.charset = 0, "UTF-8"
        url = fill_escapes(mo_url, msg)
        status, body = caller.call(url, "mo")
        return {"status": status, "body": body, "url": url}, 200

    @app.route("/<path:anything>", methods=["GET", "POST"])
    def unknown(anything: str) -> Response:
        return answer(404, "Unknown request.")  # sendsms_thread: any other URL on the sendsms port

    return app, state
