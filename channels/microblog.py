"""Government microblog accounts: one delivery per account, each posting through its network's driver.

Drivers: ``weibo`` (the Weibo open API, ``channels/weibo.py``) and ``mastodon`` (the Mastodon API,
``channels/mastodon.py``). Accounts are listed in ``DISPATCH_MICROBLOG__ACCOUNTS``, each with a name,
an access token, a driver and, for Mastodon, the instance's address. The text comes from the
``microblog`` templates and carries the link to the website article; its length is counted as the
account's network counts it and checked against that network's limit.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from channels.base import Channel, Health, Payload, Publication, Receipt, Renderer, Target
from channels.mastodon import MastodonApi
from channels.weibo import LINK_PATTERN, WeiboApi
from dispatcher.errors import ConfigurationError, ContentError
from dispatcher.rendering import context_for
from settings import MicroblogAccount, MicroblogSettings


class MicroblogChannel(Channel):
    name = "microblog"

    def __init__(self, settings: MicroblogSettings, **kwargs: Any) -> None:
        super().__init__(timeout=settings.timeout, **kwargs)
        self.settings = settings
        self.accounts = {account.name: account for account in settings.accounts}
        self.apis: dict[str, WeiboApi | MastodonApi] = {
            account.name: self._api(account) for account in settings.accounts
        }

    @property
    def on_expiry(self) -> str:
        return "withdraw" if self.settings.on_expiry == "delete" else "keep"

    @property
    def replaces_on_correction(self) -> bool:
        return self.settings.correction == "replace"

    def _api(self, account: MicroblogAccount) -> WeiboApi | MastodonApi:
        common: dict[str, Any] = {"timeout": self.settings.timeout, "session": self.http}
        if account.driver == "mastodon":
            return MastodonApi(account.api_base or "", **common)
        return WeiboApi(
            account.api_base or self.settings.api_base,
            rip=self.settings.rip,
            **common,
        )

    def _account(self, name: str) -> tuple[str, WeiboApi | MastodonApi]:
        if name not in self.accounts:
            raise ConfigurationError(f"microblog: no account {name!r} in the settings")
        return self.accounts[name].access_token.get_secret_value(), self.apis[name]

    def targets(self, publication: Publication) -> list[Target]:
        return [Target(a.name, {"driver": a.driver}) for a in self.settings.accounts]

    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        _, api = self._account(target.name)
        text = api.prepare(renderer.render(self.name, publication.item.kind.value, context_for(publication)))
        if isinstance(api, WeiboApi):
            foreign = self.off_safe_domains(text)
            if foreign:
                raise ContentError(
                    f"microblog target {target.name}: Weibo refuses links outside the app's safe domains "
                    f"{self.settings.safe_domains} (DISPATCH_MICROBLOG__SAFE_DOMAINS): {', '.join(foreign)}"
                )
        length = api.length(text)
        return Payload(
            channel=self.name,
            target=target.name,
            body={"account": target.name, "driver": api.name, "text": text, "length": length},
            measures={"length": length},
        )

    def limits(self, target: Target) -> dict[str, int]:
        account = self.accounts[target.name]
        if account.max_length:
            return {"length": account.max_length}
        if account.driver == "weibo":
            return {"length": self.settings.max_length}
        return {"length": MastodonApi.max_length}

    def send(self, payload: Payload, key: str) -> Receipt:
        token, api = self._account(payload.body["account"])
        receipt = api.post(token, payload.body["text"], key)
        return Receipt(receipt.provider_id, {**receipt.detail, "account": payload.body["account"]})

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        token, api = self._account(payload.body["account"])
        return api.find(token, payload.body["text"], key)

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        token, api = self._account(payload.body["account"])
        if receipt.provider_id:
            api.delete(token, receipt.provider_id)

    def off_safe_domains(self, text: str) -> list[str]:
        """Links in ``text`` whose host is not one of the app's safe domains (or under one)."""
        return [link for link in LINK_PATTERN.findall(text) if not self.on_safe_domain(link)]

    def on_safe_domain(self, link: str) -> bool:
        host = (urlsplit(link).hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in map(str.lower, self.settings.safe_domains))

    def probe(self) -> Health:
        if not self.accounts:
            return Health(False, "no microblog account configured", 0.0)
        started = time.monotonic()
        problems, refused = [], []
        weibo = [a.name for a in self.settings.accounts if a.driver == "weibo"]
        if weibo and not self.on_safe_domain(self.public_url):
            problems.append(
                f"the article links ({self.public_url}) are not on the Weibo app's safe domains "
                f"{self.settings.safe_domains}: share.json would refuse every status"
            )
        for name in self.accounts:
            token, api = self._account(name)
            health = api.check(token)
            if not health.ok:
                problems.append(f"{name}: {health.detail}")
                refused.append(name)
        latency = (time.monotonic() - started) * 1000
        if problems:
            return Health(
                False, "; ".join(problems), latency, down=tuple(refused), checked=len(self.accounts)
            )
        return Health(True, f"{len(self.accounts)} account(s) accepted", latency)

    def describe(self, payload: Payload) -> list[str]:
        body = payload.body
        return [f"@{body['account']}, {body['length']} characters", *body["text"].split("\n")]
