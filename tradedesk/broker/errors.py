"""Domain errors every broker raises, so callers never see an SDK's exceptions."""

from __future__ import annotations


class BrokerError(Exception):
    """Base class for anything a broker refuses or fails to do."""

    def __init__(self, message: str, *, code: str | int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code


class OrderRejected(BrokerError):
    """The broker refused the request (Alpaca's 403/422 with its code and message)."""

    def __init__(self, message: str, *, code: str | int | None = None, http_status: int = 422):
        super().__init__(message, code=code)
        self.http_status = http_status


class OrderNotFound(BrokerError):
    """No such order at the broker (Alpaca's 404)."""


class NotCancelable(OrderRejected):
    """The order is in a state that can't be canceled or replaced (Alpaca's 422)."""


class RateLimited(BrokerError):
    """Too many requests; retry after `retry_after` seconds."""

    def __init__(self, message: str = "rate limited", *, retry_after: float = 1.0, code=None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BrokerUnavailable(BrokerError):
    """Timeouts, connection errors and 5xx: the broker may or may not have acted."""


class AuthenticationFailed(BrokerError):
    """The credentials were refused (Alpaca's 401/403 on the account endpoint)."""


class CredentialsUnreadable(BrokerError):
    """The stored secret cannot be decrypted with the configured FIELD_ENCRYPTION_KEY: nothing
    is sent to the broker; the account must be linked again (or the old key restored)."""

    def __init__(self, message: str = "", *, code: str = "broker_credentials_unreadable"):
        super().__init__(
            message
            or "This broker account's stored secret cannot be decrypted (the encryption key "
            "changed): link the account again, or ask an operator to restore the key.",
            code=code,
        )
