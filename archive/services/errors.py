"""Errors a service raises for the caller to show as they are."""


class ServiceError(Exception):
    """A request the archive cannot carry out; the message says why."""


class NotFound(ServiceError):
    """No such item (or the prefix matches none)."""


class Ambiguous(ServiceError):
    """An id prefix that matches more than one item."""


class CheckFailed(ServiceError):
    """A check the request depends on failed (the caller's exit code 1, not 2): the message says which."""


class IntegrityError(CheckFailed):
    """Stored bytes do not match what the catalog recorded: refuse loudly."""


class Locked(ServiceError):
    """The access identity or the catalog key is not unlocked in this process: a custodian must unlock it."""


class Invalid(ServiceError):
    """Input the archive refuses (an unknown vocabulary value, impossible dates …); nothing was written."""


class Forbidden(ServiceError):
    """The caller's role may not see or do this (a witness's identity, a withheld name: custodians only)."""


class Unauthenticated(ServiceError):
    """No credential, or one the archive does not accept (unknown, expired, revoked): HTTP 401."""

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason  # a stable code: missing | unknown | expired | revoked | scheme
