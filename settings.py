"""Every setting of the dispatcher, in one pydantic-settings model.

This is the one module that reads the environment. Variables are prefixed ``DISPATCH_`` and nested
sections use ``__``: ``DISPATCH_SMS__PASSWORD``, ``DISPATCH_WEBSITE__BASE_URL``. Lists and nested
models are given as JSON: ``DISPATCH_SMS__RECIPIENTS='["+8613800138000"]'``. A ``.env`` file in
the working directory is read too.

The defaults are the embedded set-up: a SQLite ledger and a SQLite broker under ``var/``, and every
channel pointed at the sandbox emulators on 127.0.0.1 (``dispatch sandbox``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

PROJECT_DIR = Path(__file__).resolve().parent
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
# The sandbox emulators' credentials: the defaults, refused for any peer that is not on this machine.
SANDBOX_SECRETS = {"website": "sand box pass word", "sms": "sandbox", "microblog": "sandbox-token"}


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable to fix."""


def parse_rate(text: str) -> tuple[float, float]:
    """(capacity, tokens per second) of ``N/s``, ``N/m`` or ``N/h``."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"rate limit {text!r} is not N/s, N/m or N/h")
    count = float(match.group(1))
    if count <= 0:
        raise ValueError(f"rate limit {text!r} must allow at least one")
    return count, count / _SECONDS[match.group(2)]


class WebsiteSettings(BaseModel):
    """A WordPress site reached through its REST API with an Application Password."""

    base_url: str = "http://127.0.0.1:8101"
    public_url: str = Field(
        "http://127.0.0.1:8101",
        description="Address readers use; article links on other channels are built from it.",
    )
    username: str = "dispatch"
    app_password: SecretStr = SecretStr(SANDBOX_SECRETS["website"])
    post_status: str = "publish"
    categories: dict[str, list[int]] = Field(
        default_factory=lambda: {"warning": [2], "safety_tip": [3], "release": [4]},
        description="Disclosure catalogue: category ids per kind (JSON).",
    )
    interpretation_category: int | None = Field(
        5, description="Added to releases that carry an interpretation; None adds nothing."
    )
    retract_to: Literal["trash", "draft"] = "trash"
    on_expiry: Literal["notice", "draft", "keep"] = Field(
        "notice",
        description="What becomes of an item's post when it expires: a notice at the top saying so, "
        "moved to draft, or kept as it is.",
    )
    timeout: float = 10.0

    @model_validator(mode="after")
    def _own_password_for_a_real_site(self) -> WebsiteSettings:
        _own_secret(self.base_url, self.app_password, "website", "DISPATCH_WEBSITE__APP_PASSWORD")
        return self


class SmsSettings(BaseModel):
    """A Kannel-compatible SMS gateway reached through its HTTP ``sendsms`` interface."""

    sendsms_url: str = "http://127.0.0.1:8102/cgi-bin/sendsms"
    username: str = "dispatch"
    password: SecretStr = SecretStr(SANDBOX_SECRETS["sms"])
    sender: str = "12379"
    signature: str = Field("应急管理", description="Shown as 【signature】 in front of every text.")
    batch_size: int = Field(100, ge=1, le=1000)
    daily_cap: int = Field(
        2, ge=1, description="Routine texts a phone receives per day at most (warnings are never capped)."
    )
    over_cap: Literal["wait", "skip"] = Field(
        "wait", description="A routine text over a phone's daily cap waits for the next day, or is skipped."
    )
    withdrawal_notice: bool = Field(
        True,
        description="When an item is withdrawn, text everyone who received it that it no longer stands "
        "(a text cannot be taken back).",
    )
    default_region: str = Field(
        "CN", description="Region for numbers given without a country code (ISO 3166 code)."
    )
    warnings_ignore_opt_out: bool = Field(
        True, description="Warnings reach every subscriber in the area, opted out of routine texts or not."
    )
    dlr_url: str | None = Field(
        None, description="Where Kannel sends delivery reports; default: the dispatcher API's /sms/dlr."
    )
    callback_token: SecretStr = Field(
        SecretStr(""), description="Sent with delivery-report URLs; default: the API token."
    )
    dlr_mask: int = 31
    split: Literal["dispatcher", "gateway"] = Field(
        "dispatcher",
        description="Who splits a long text: the dispatcher (each part its own request with a "
        "concatenation header, safe with any max-messages) or the gateway (one request; Kannel then "
        "needs max-messages at least the part count, or it cuts the text and says nothing).",
    )
    report_window: float = Field(
        600.0,
        gt=0,
        description="Seconds after sending by which every part of a long text has been reported; fewer "
        "final reports than parts by then raises a channel alert (a gateway truncating long texts).",
    )
    timeout: float = 10.0

    @model_validator(mode="after")
    def _own_password_for_a_real_gateway(self) -> SmsSettings:
        _own_secret(self.sendsms_url, self.password, "sms", "DISPATCH_SMS__PASSWORD")
        return self


class DisplaySettings(BaseModel):
    """Electronic display signs listed in a registry file and driven over HTTP."""

    registry: Path = PROJECT_DIR / "examples" / "signs.yaml"
    http_base_url: str = Field(
        "http://127.0.0.1:8103",
        description="Joined with a sign's address when the registry gives a bare id instead of a URL.",
    )
    page_time: float = Field(3.0, gt=0, description="Seconds each page is shown.")
    snmp_read_community: SecretStr = Field(
        SecretStr("public"), description="NTCIP signs: SNMP read community."
    )
    snmp_write_community: SecretStr = Field(
        SecretStr("private"), description="NTCIP signs: SNMP write community."
    )
    validate_timeout: float = Field(
        10.0, gt=0, description="NTCIP signs: seconds to wait for a controller to validate a message."
    )
    watch_interval: float = Field(
        30.0, gt=0, description="Seconds between checks that signs still show what was sent to them."
    )
    timeout: float = 10.0


class MicroblogAccount(BaseModel):
    name: str
    access_token: SecretStr
    driver: Literal["weibo", "mastodon"] = "weibo"
    api_base: str | None = Field(
        None, description="The API's address: the Mastodon instance; for Weibo, default api_base."
    )
    max_length: int | None = Field(None, ge=1, description="Overrides the network's status limit.")

    @model_validator(mode="after")
    def _instance_for_mastodon(self) -> MicroblogAccount:
        if self.driver == "mastodon" and not self.api_base:
            raise ValueError(f"account {self.name!r}: a Mastodon account needs api_base (its instance)")
        return self


class MicroblogSettings(BaseModel):
    """Weibo accounts posting through the open API ``statuses/share.json``."""

    api_base: str = "http://127.0.0.1:8104"
    accounts: list[MicroblogAccount] = Field(
        default_factory=lambda: [
            MicroblogAccount(name="sandbox", access_token=SecretStr(SANDBOX_SECRETS["microblog"]))
        ]
    )
    rip: str = Field(
        "127.0.0.1",
        description="The posting user's real public IP, required by Weibo; a loopback or private "
        "address is refused unless api_base is the local sandbox.",
    )
    safe_domains: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"],
        description="The Weibo app's safe domains (安全域名): share.json refuses a status whose links "
        "lie elsewhere, so article links are checked against them at approval and probe.",
    )
    max_length: int = 140
    timeout: float = 10.0
    on_expiry: Literal["keep", "delete"] = Field(
        "keep", description="What becomes of an item's posts when it expires: kept, or deleted."
    )
    correction: Literal["follow_up", "replace"] = Field(
        "follow_up",
        description="How a correction reaches a microblog (neither Weibo nor Mastodon's share API edits "
        "a post): follow_up posts a correction that quotes the original, which stays; replace posts the "
        "corrected text, then deletes the original.",
    )

    @model_validator(mode="after")
    def _real_address_for_weibo(self) -> MicroblogSettings:
        bases = [a.api_base or self.api_base for a in self.accounts if a.driver == "weibo"]
        if any(not _loopback(base) for base in bases):
            try:
                public = ipaddress.ip_address(self.rip).is_global
            except ValueError:
                public = False
            if not public:
                raise ValueError(
                    f"rip {self.rip!r} is not a public IP address: Weibo needs the posting user's real "
                    "address (DISPATCH_MICROBLOG__RIP); loopback and private addresses are for the sandbox"
                )
        for account in self.accounts:
            _own_secret(
                account.api_base or self.api_base,
                account.access_token,
                "microblog",
                f"the access token of account {account.name!r} (DISPATCH_MICROBLOG__ACCOUNTS)",
            )
        return self


def _own_secret(url: str, secret: SecretStr, channel: str, name: str) -> None:
    """The sandbox's credential works only for the sandbox: a peer elsewhere needs its own."""
    if secret.get_secret_value() == SANDBOX_SECRETS[channel] and not _loopback(url):
        raise ValueError(f"{name} is the sandbox's; {url} needs its own")


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiSettings(BaseModel):
    """The dispatcher's own HTTP endpoints: Kannel's delivery reports and inbound SMS."""

    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)
    public_url: str = Field(
        "http://127.0.0.1:8100", description="How the SMS gateway reaches the API (callback URLs)."
    )
    token: SecretStr = Field(
        SecretStr(""),
        description="Shared secret every callback must carry as ?token=; default: generated once into "
        "var/ (the gateway's callback URLs carry it; every machine running the API needs the same).",
    )


class CapSettings(BaseModel):
    """OASIS CAP 1.2: alerts taken in by ``dispatch submit FILE.xml``; written by ``dispatch export``."""

    sender: str = Field(
        "dispatch@localhost",
        description="The office's CAP sender id, written as <sender> of exported alerts (no spaces, "
        "commas, < or &); an Update or Cancel that references an exported alert finds its item by it.",
    )
    language: str = Field(
        "zh-CN", description="The info language that is published; blocks in other languages are kept."
    )
    geocode_names: list[str] = Field(
        default_factory=lambda: ["CPEAS Geographic Code"],
        description="geocode valueNames that carry GB/T 2260 division codes (12 digits read as the "
        "6-digit division they start with); the first is written on export.",
    )
    statuses: list[str] = Field(
        default_factory=lambda: ["Actual"],
        description='Alert statuses taken in: an "Exercise" or "Test" is refused unless listed.',
    )

    @field_validator("sender")
    @classmethod
    def _a_cap_name(cls, sender: str) -> str:
        if not sender or any(ch.isspace() or ch in ",<&" for ch in sender):
            raise ValueError("a CAP sender has no spaces, commas, < or &")
        return sender


class MonitorSettings(BaseModel):
    """Channel health (``dispatcher/monitor.py``): probes, the rule that calls a channel degraded or down,
    overdue deliveries and the morning digest."""

    probe_interval: float = Field(30.0, gt=0, description="Seconds between health checks (the beat's).")
    down_after: int = Field(
        1, ge=1, description="Failed probes in a row before a channel is down (1: down within one interval)."
    )
    up_after: int = Field(1, ge=1, description="Good probes in a row before a channel that was down is up.")
    degraded_window: float = Field(
        900.0, gt=0, description="Seconds of recent send outcomes that decide whether a channel is degraded."
    )
    degraded_ratio: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Share of failed or retried sends in that window from which a channel or target is "
        "degraded.",
    )
    degraded_min: int = Field(
        3, ge=1, description="Send outcomes in the window needed before their share says anything."
    )
    overdue_after: dict[str, float] = Field(
        default_factory=lambda: {"warning": 120.0, "release": 1800.0, "safety_tip": 3600.0},
        description="Per kind: seconds from approval (or publish_at) after which a delivery not yet sent "
        "is overdue.",
    )
    digest_at: str = Field(
        "08:30", description="Local time (DISPATCH_TIME_ZONE) of the morning supervision digest, HH:MM."
    )

    @field_validator("digest_at")
    @classmethod
    def _clock_time(cls, text: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text.strip()):
            raise ValueError(f"{text!r} is not HH:MM")
        return text.strip()

    @field_validator("overdue_after")
    @classmethod
    def _kinds(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, seconds in value.items():
            if kind not in ("warning", "safety_tip", "release"):
                raise ValueError(f"{kind!r} is not a kind (warning, safety_tip, release)")
            if seconds <= 0:
                raise ValueError(f"{kind}: {seconds} seconds; must be more than 0")
        return value


class AlertSettings(BaseModel):
    """Where operators are told that a channel went down or came back, and the morning digest goes."""

    webhook_url: SecretStr | None = Field(
        None,
        description="POSTed a JSON body per alert, signed (X-Dispatch-Signature); None: no webhook. A "
        "secret: chat webhooks carry their access token in the URL.",
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key of the webhook's signature; needed with webhook_url."
    )
    oncall: list[str] = Field(
        default_factory=list,
        description="Phone numbers texted each alert through the SMS channel (JSON list; normalised to "
        "E.164 with DISPATCH_SMS__DEFAULT_REGION).",
    )
    timeout: float = Field(5.0, gt=0, description="Seconds an alert's webhook request may take.")
    attempts: int = Field(10, ge=1, description="Tries of one alert on one route before it is failed.")
    retry_seconds: float = Field(
        15.0, gt=0, description="Wait after an alert's first failed try; doubled after each, up to 10 min."
    )

    @model_validator(mode="after")
    def _secret_with_the_webhook(self) -> AlertSettings:
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("a webhook_url needs a webhook_secret (DISPATCH_ALERTS__WEBHOOK_SECRET)")
        return self


class RetryBudget(BaseModel):
    attempts: int = Field(48, ge=1, description="Attempts before a delivery is dead.")
    seconds: float = Field(21600, gt=0, description="Time from approval (or re-drive) before it is dead.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    var_dir: Path = PROJECT_DIR / "var"
    ledger_url: str = ""
    token: SecretStr = Field(
        SecretStr(""),
        description="The command line acts as the user whose token this is (dispatch users add prints one); "
        "default: the token in token_file.",
    )
    token_file: Path = Field(
        Path("~/.config/dispatch/token"),
        description="Where the command line finds its token when DISPATCH_TOKEN is not set; the file must "
        "be readable by its owner alone (mode 600).",
    )
    broker_url: str = ""
    broker_polling_interval: float = Field(
        0.1, gt=0, description="Embedded broker: seconds between polls of an empty queue."
    )
    worker_concurrency: int = Field(4, ge=1)
    queue_order: Literal["urgent_first", "fair"] = Field(
        "urgent_first",
        description="urgent_first: a worker takes a waiting warning before any routine message; fair: "
        "kombu's turn through every queue alike.",
    )
    lease_seconds: int = Field(60, ge=5, description="How long a claimed delivery stays claimed.")
    sweep_interval: float = Field(2.0, gt=0, description="Seconds between sweeps of the outbox.")
    max_attempts: int = Field(
        48,
        ge=1,
        description="Default retry budget: attempts (waits the peer imposes are not attempts). With the "
        "default backoff, 48 attempts span about 2.5 hours, so a delivery outlives a real outage.",
    )
    max_retry_seconds: float = Field(21600, gt=0, description="Default retry budget: seconds.")
    retry_budgets: dict[str, RetryBudget] = Field(
        default_factory=dict, description="Per channel: {attempts, seconds}, overriding the defaults."
    )
    rate_limits: dict[str, str] = Field(
        default_factory=dict,
        description='Shared limits per channel or channel:target: {"sms": "20/s", "microblog:bj": "30/h"}.',
    )
    circuit_failures: int = Field(
        5, ge=1, description="Consecutive temporary failures that open a target's circuit."
    )
    circuit_cooldown: float = Field(
        60.0, gt=0, description="Seconds an open circuit rests before one trial send."
    )
    processing_window: float = Field(
        60.0,
        ge=0,
        description="Seconds a peer may still act on a request whose answer was lost: a lookup that "
        "finds nothing sooner than this after the request does not conclude it never landed.",
    )
    processing_windows: dict[str, float] = Field(
        default_factory=dict, description='Per channel, overriding the default: {"website": 120}.'
    )
    repeat_when_unknown: dict[str, bool] = Field(
        default_factory=lambda: {"warning": True, "safety_tip": False, "release": False},
        description="Per kind: send again when a channel without lookup left the outcome unknown.",
    )
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    templates_dir: Path = PROJECT_DIR / "templates"
    task_signing_key: SecretStr = Field(
        SecretStr(""), description="HMAC key of task messages; default: generated once into var/."
    )
    payload_key: SecretStr = Field(
        SecretStr(""),
        description="HMAC key that pins approved payloads (kept out of the ledger); default: generated "
        "once into var/. Every machine that approves or sends needs the same value.",
    )
    api: ApiSettings = Field(default_factory=ApiSettings)
    website: WebsiteSettings = Field(default_factory=WebsiteSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    display: DisplaySettings = Field(default_factory=DisplaySettings)
    microblog: MicroblogSettings = Field(default_factory=MicroblogSettings)
    cap: CapSettings = Field(default_factory=CapSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    quiet_hours: dict[str, str] = Field(
        default_factory=lambda: {"sms": "21:00-08:00"},
        description="Per channel, local hours in which routine items are not sent (they wait for the end; "
        'warnings ignore them): {"sms": "21:00-08:00", "display": "23:00-06:00"}; "none" for none.',
    )
    rota_grace_seconds: float = Field(
        3600,
        ge=0,
        description="A rota slot missed while nothing ran is sent late within this many seconds of its "
        "time; later, it is skipped, on the record.",
    )
    approvals_required: dict[str, int] = Field(
        default_factory=lambda: {"Extreme": 2, "Severe": 2},
        description="Approvals a warning of each severity needs, by as many different people (none its "
        'author); any other item needs one. JSON: {"Extreme": 2, "Severe": 2, "Moderate": 1}.',
    )
    time_zone: str = Field(
        "Asia/Shanghai",
        description="The office's time zone (IANA name): times written for people and in CAP.",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: dict[str, str]) -> dict[str, str]:
        for channel, text in value.items():
            if text.strip().lower() in ("", "none"):
                continue
            if not re.fullmatch(
                r"\s*([01][0-9]|2[0-3]):[0-5][0-9]\s*-\s*([01][0-9]|2[0-3]):[0-5][0-9]\s*", text
            ):
                raise ValueError(f"{channel}: {text!r} is not HH:MM-HH:MM (or none)")
        return value

    @field_validator("approvals_required")
    @classmethod
    def _approvals(cls, value: dict[str, int]) -> dict[str, int]:
        severities = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
        for severity, count in value.items():
            if severity not in severities:
                raise ValueError(f"{severity!r} is not a CAP severity ({', '.join(severities)})")
            if not 1 <= count <= 5:
                raise ValueError(f"{severity}: {count} approvals; between 1 and 5")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a time zone (an IANA name like Asia/Shanghai)") from None
        return name

    @model_validator(mode="after")
    def _oncall_numbers(self) -> Settings:
        # As subscribers' numbers are read: E.164, a number without a country code in the SMS region.
        numbers = []
        for raw in self.alerts.oncall:
            try:
                number = phonenumbers.parse(raw, self.sms.default_region)
            except phonenumbers.NumberParseException as exc:
                raise ValueError(f"DISPATCH_ALERTS__ONCALL: {raw!r} is not a phone number ({exc})") from None
            if not phonenumbers.is_valid_number(number):
                raise ValueError(f"DISPATCH_ALERTS__ONCALL: {raw!r} is not a valid phone number")
            numbers.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
        self.alerts.oncall = list(dict.fromkeys(numbers))
        return self

    def model_post_init(self, _context: object) -> None:
        if not self.ledger_url:
            self.ledger_url = f"sqlite:///{self.var_dir / 'ledger.sqlite'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.var_dir / 'broker.sqlite'}"
        if not self.sms.dlr_url:
            self.sms.dlr_url = f"{self.api.public_url.rstrip('/')}/sms/dlr"
        if not self.sms.callback_token.get_secret_value() and self.api.token.get_secret_value():
            self.sms.callback_token = self.api.token

    @field_validator("rate_limits")
    @classmethod
    def _rates(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            try:
                parse_rate(text)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value

    def with_generated_secrets(self) -> Settings:
        """Fill every secret left empty with one generated once into ``var_dir`` (mode 0600), so no
        secret has a working default: the task-signing key, the payload pin key, the API token."""
        if not self.task_signing_key.get_secret_value():
            self.task_signing_key = SecretStr(generated_secret(self.var_dir / "task-signing.key"))
        if not self.payload_key.get_secret_value():
            self.payload_key = SecretStr(generated_secret(self.var_dir / "payload-pin.key"))
        if not self.api.token.get_secret_value():
            self.api.token = SecretStr(generated_secret(self.var_dir / "api-token"))
        if not self.sms.callback_token.get_secret_value():
            self.sms.callback_token = self.api.token
        return self

    def window_for(self, channel: str) -> float:
        """The processing window of ``channel``'s peer, in seconds."""
        return self.processing_windows.get(channel, self.processing_window)

    def budget(self, channel: str) -> RetryBudget:
        return self.retry_budgets.get(channel) or RetryBudget(
            attempts=self.max_attempts, seconds=self.max_retry_seconds
        )

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+")


def load_settings(**values: Any) -> Settings:
    """Parse and check every setting once, at a process's start (``values`` override the environment),
    and generate the secrets left empty. A bad value raises :class:`SettingsError` naming its variable."""
    try:
        settings = Settings(**values)
    except PydanticSettingsError as exc:  # a value that is not even JSON, where JSON is expected
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"DISPATCH_{field.group(1).upper()}" if field else "a DISPATCH_ variable"
        raise SettingsError(f"bad setting: {name}: not valid JSON (lists and sections are JSON)") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [str(part) for part in error["loc"] if not str(part).isdigit()]
            name = "DISPATCH_" + "__".join(location[:2]).upper() if location else "settings"
            problems.append(
                f"{name}: {error['msg']}" + (f" ({'.'.join(location[2:])})" if location[2:] else "")
            )
        raise SettingsError("bad setting: " + "; ".join(problems)) from None
    return settings.with_generated_secrets()


def generated_secret(path: Path) -> str:
    """A secret kept in ``path`` (mode 0600), made once, atomically: processes starting together all
    read the same whole value — it is written to a private temporary file and linked into place, and
    whoever loses the race reads the winner's."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32))
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)  # fails if another process got there first; never half-written
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    value = path.read_text().strip()
    if not value:
        raise SettingsError(f"{path.name} in the var directory is empty; delete it to have a new one made")
    return value
