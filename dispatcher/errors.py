"""The dispatcher's exceptions, in one tree::

    DispatchError
    ├── ChannelError                  a channel refused or failed a call
    │   ├── TemporaryChannelError     timeouts, 408/429/5xx: retry later; ``wait=True`` when the peer
    │   │                             imposes the wait (throttling, a higher-priority message, local
    │   │                             control): the delivery waits without spending an attempt
    │   │   └── OutcomeUnknownError   the request left and no answer came: look up, never resend blindly
    │   └── PermanentChannelError     4xx, rejected content, bad credentials: fail now with the reason
    │       └── TooLateError          the peer cannot take it in the time left before the item expires
    ├── ConfigurationError            a setting or the sign registry is wrong
    ├── LedgerSchemaError             the ledger's schema is not one this release can migrate
    ├── InvalidItemError              an item file or document does not validate (names the field)
    ├── ContentError                  an approved item cannot be rendered within a channel's limits
    ├── RefusedError                  a state change the rules forbid (self-approval, approving twice)
    │   └── ForbiddenError            the user's roles do not allow it
    ├── AuthenticationError           no token, or one that is not a user's
    ├── NotRepeatedError              an unknown outcome the per-kind policy does not let us repeat
    └── NotFoundError                 no such item or delivery

Each carries ``exit_code`` for the command line: 2 for bad input, 1 for a refusal.
"""

from __future__ import annotations


class DispatchError(Exception):
    exit_code = 1


class ChannelError(DispatchError):
    def __init__(self, message: str, *, code: str | int | None = None, alert: bool = False) -> None:
        super().__init__(message)
        self.code = code
        #: True when people must act (expired credentials): the core raises a channel alert
        self.alert = alert


class TemporaryChannelError(ChannelError):
    def __init__(
        self,
        message: str,
        *,
        code: str | int | None = None,
        retry_after: float | None = None,
        wait: bool = False,
        alert: bool = False,
    ) -> None:
        super().__init__(message, code=code, alert=alert)
        self.retry_after = retry_after
        #: the peer told us when to come back (a rate limit, a sign busy with a warning): not a
        #: failure, so it spends no attempt and counts against no circuit
        self.wait = wait


class OutcomeUnknownError(TemporaryChannelError):
    pass


class PermanentChannelError(ChannelError):
    pass


class TooLateError(PermanentChannelError):
    """Too little time is left before the item expires for the peer to take it (a sign counts in
    whole minutes): the delivery ends as expired, not failed."""


class ConfigurationError(DispatchError):
    exit_code = 2


class LedgerSchemaError(DispatchError):
    exit_code = 1


class InvalidItemError(DispatchError):
    exit_code = 2

    def __init__(self, source: str, problems: list[tuple[str, str]], what: str = "item") -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: invalid {what}"] + [f"  {field}: {msg}" for field, msg in problems]
        super().__init__("\n".join(lines))


class ContentError(DispatchError):
    exit_code = 2


class RefusedError(DispatchError):
    exit_code = 1


class ForbiddenError(RefusedError):
    exit_code = 1


class AuthenticationError(DispatchError):
    exit_code = 1


class NotRepeatedError(DispatchError):
    pass


class NotFoundError(DispatchError):
    exit_code = 1
