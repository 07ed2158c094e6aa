"""The label values of the metrics: fixed sets, so the number of series is bounded.

A label value is never anything a client or a provider chooses freely -- not a user, a
``sid``, a path, a URL, nor a provider's ``error`` text (the callback's ``error`` parameter
is the client's to write): each function here maps what it is given onto a fixed set.

Security caveat: an unbounded label is a memory leak an attacker can drive (each new value
is a new series kept by this process and by Prometheus for ever); keep every new label a
fixed set, mapped here.
"""

from __future__ import annotations

from ..errors import ERRORS, AuthFailure, describe

SUCCESS = "success"
#: Silent (``prompt=none``) sign-ins: signed in; the provider had no session (the fallback ran); failed.
SILENT_OUTCOMES = ("signed_in", "login_required", "error")
REFRESH_OUTCOMES = (SUCCESS, "refused", "error")
#: Logout notifications from the provider: done; refused (bad token, replay); not done now (503, retried).
LOGOUT_OUTCOMES = (SUCCESS, "refused", "unavailable")
BACKCHANNEL = "backchannel"
FRONTCHANNEL = "frontchannel"
CHANNELS = (BACKCHANNEL, FRONTCHANNEL)
#: Why a session ended: sign-out here, idle/absolute timeout, revoked (a sign-out or logout seen through the
#: revocation journal of the cookie and environ stores), a provider's logout, a refused refresh.
END_REASONS = ("logout", "expired", "revoked", BACKCHANNEL, FRONTCHANNEL, "refresh_refused")
#: The session-store operations that are timed (:class:`~sso_middleware.stores.backend.SessionBackend`'s I/O).
STORE_OPERATIONS = (
    "open_session", "new_session", "save_session", "delete_session",
    "read_record", "write_record", "delete_record",
    "index_add", "index_members", "index_remove",
    "acquire", "release",
)
#: The ``what`` each provider call names in :mod:`sso_middleware._oidc.http`, to its endpoint label.
ENDPOINTS = {
    "discovery": "discovery",
    "jwks": "jwks",
    "token": "token",
    "userinfo": "userinfo",
    "pushed authorization request": "par",
    "revocation": "revocation",
    "introspection": "introspection",
}
OTHER = "other"


def outcome_code(code: str) -> str:
    """A failure code as a label: a catalogue code, ``provider_error:<OAuth error>``, else its generic code.

    ``describe`` is the failure page's own mapping: what the page would show is what is counted.
    """
    return describe(code)[2]


def endpoint(what: str) -> str:
    """The endpoint label of a provider call (``other`` for a name this table does not know)."""
    return ENDPOINTS.get(what, OTHER)


def failure_reason(failure: BaseException) -> str:
    """Why a provider call failed, as a label: its failure code (``provider_timeout``...), else ``other``."""
    code = failure.code if isinstance(failure, AuthFailure) else ""
    return code if code in ERRORS else OTHER


def end_reason(reason: str) -> str:
    return reason if reason in END_REASONS else OTHER


def channel(name: str) -> str:
    return name if name in CHANNELS else OTHER
