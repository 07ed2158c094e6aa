"""TransactionCookies directly: sign-ins in flight in per-state encrypted cookies.

The browser is played by hand: ``issue`` gives ``Set-Cookie`` headers, and the
next request's ``Cookie`` header is built from the cookies a browser would then
hold.  Names are computed from the specification (:func:`tests.cookies.tx_name`),
not by asking the class.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from dataclasses import asdict
from typing import Any, Optional

import pytest
from cryptography.fernet import Fernet

from sso_middleware import SSOConfig
from sso_middleware._wsgi.transactions import COOKIE_BUDGET, MAX_TRANSACTIONS, Transaction, TransactionCookies
from sso_middleware.errors import AuthFailure

from ..conftest import SESSION_SECRET
from ..cookies import SetCookie, tx_name, tx_prefix
from ..fakes import BASE_URL, CLIENT_ID, CLIENT_SECRET, ISSUER

NOW = 1_700_000_000.0
TTL = 600
COOKIE = "__Host-sso_session"  # the default session cookie name on https
STATE = "state-" + "s" * 37


def st(label: str) -> str:
    """A state of the shape we issue (43 URL-safe characters) made from a readable label."""
    return (label + "_" * 43)[:43]


def make_config(**overrides: Any) -> SSOConfig:
    settings: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                "base_url": BASE_URL, "session_secret": SESSION_SECRET, "transaction_ttl": TTL}
    settings.update(overrides)
    return SSOConfig(**settings)


@pytest.fixture
def cookies() -> TransactionCookies:
    return TransactionCookies(make_config())


def transaction(now: float = NOW, **fields: Any) -> Transaction:
    values: dict[str, Any] = {"nonce": "nonce-" + "n" * 37, "code_verifier": "verifier-" + "v" * 55,
                              "target_url": "/dashboard?tab=2", "connection": "Username-Password-Authentication",
                              "prompt": "none", "expires_at": now + TTL}
    values.update(fields)
    return Transaction(**values)


def parsed(headers: list[tuple[str, str]]) -> list[SetCookie]:
    assert all(name == "Set-Cookie" for name, _ in headers), headers
    return [SetCookie.parse(value) for _, value in headers]


def issue(cookies: TransactionCookies, state: str = STATE, now: float = NOW, header: str = "",
          spent: Optional[str] = None, **fields: Any) -> tuple[str, list[SetCookie]]:
    """Issue a transaction for ``state``: the ``name=value`` the browser then holds, and every header."""
    headers = parsed(cookies.issue(state, transaction(now, **fields), header, now, spent=spent))
    new = headers[0]
    assert new.name == tx_name(COOKIE, state) and new.value
    return f"{new.name}={new.value}", headers


def expired_names(headers: list[SetCookie]) -> list[str]:
    return [cookie.name for cookie in headers if cookie.expires_it]


def value_of(pair: str) -> str:
    return pair.partition("=")[2]


# -- round trip, single use ----------------------------------------------------------


def test_a_transaction_round_trips(cookies: TransactionCookies) -> None:
    pair, headers = issue(cookies)
    assert len(headers) == 1  # nothing else to expire
    found, expire = cookies.redeem(STATE, pair, NOW + 1)
    assert found == transaction()
    (expiry,) = parsed(expire)
    assert (expiry.name, expiry.value, expiry.attributes["max-age"]) == (tx_name(COOKIE, STATE), "", "0")


def test_every_field_survives_including_none_values(cookies: TransactionCookies) -> None:
    fields: dict[str, Any] = {"connection": None, "prompt": None,
                              "target_url": "https://app1.example/x?a=1&b=%20\"q\"#frag"}
    pair, _ = issue(cookies, **fields)
    assert cookies.redeem(STATE, pair, NOW)[0] == transaction(**fields)


def test_any_process_sharing_the_secret_redeems_it() -> None:
    """Workers and hosts behind a load balancer each build their own instance from the same settings."""
    pair, _ = issue(TransactionCookies(make_config()))
    assert TransactionCookies(make_config()).redeem(STATE, pair, NOW)[0] == transaction()


def test_the_name_is_the_session_cookie_name_an_app_part_and_16_hex_of_sha256_of_the_state(
        cookies: TransactionCookies) -> None:
    app = hashlib.sha256(BASE_URL.encode()).hexdigest()[:8]
    expected = f"{COOKIE}_tx_{app}_" + hashlib.sha256(STATE.encode()).hexdigest()[:16]
    assert cookies.name_for(STATE) == expected == tx_name(COOKIE, STATE)
    assert TransactionCookies(make_config(cookie_name="app2_sso")).name_for(STATE).startswith(
        f"__Host-app2_sso_tx_{app}_")


def test_single_use_the_browser_that_drops_the_cookie_cannot_redeem_again(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies)
    other_pair, _ = issue(cookies, state=st("another-state"))
    jar = {pair.partition("=")[0]: value_of(pair), other_pair.partition("=")[0]: value_of(other_pair)}
    found, expire = cookies.redeem(STATE, "; ".join(f"{k}={v}" for k, v in jar.items()), NOW + 1)
    assert found is not None
    for cookie in parsed(expire):  # the browser applies the response
        assert cookie.expires_it
        jar.pop(cookie.name)
    header = "; ".join(f"{k}={v}" for k, v in jar.items())
    assert cookies.redeem(STATE, header, NOW + 2) == (None, [])
    # The other sign-in in flight was not touched.
    assert cookies.redeem(st("another-state"), header, NOW + 2)[0] is not None


def test_an_unknown_state_gets_nothing_and_expires_nothing(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies)
    assert cookies.redeem(st("forged-state"), pair, NOW) == (None, [])
    assert cookies.redeem(STATE, "", NOW) == (None, [])


# -- bound to its state ---------------------------------------------------------------


def test_a_cookie_renamed_to_another_states_name_is_refused(cookies: TransactionCookies) -> None:
    """Names are not authenticated; the state inside is, and must be the one the callback got."""
    pair, _ = issue(cookies)
    victim = st("victim-state")
    renamed = f"{tx_name(COOKIE, victim)}={value_of(pair)}"
    found, expire = cookies.redeem(victim, renamed, NOW)
    assert found is None
    assert expired_names(parsed(expire)) == [tx_name(COOKIE, victim)]  # used up all the same
    assert cookies.redeem(STATE, pair, NOW)[0] is not None  # the control: under its own name it works


def test_the_state_must_match_exactly(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies)
    for other in (STATE + "x", STATE[:-1], STATE[:-1] + "t", STATE.upper(), " " + STATE, "x" + STATE[1:]):
        forged = f"{tx_name(COOKIE, other)}={value_of(pair)}"
        assert cookies.redeem(other, forged, NOW)[0] is None, other


# -- expiry -----------------------------------------------------------------------


def test_expired_by_its_expires_at(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies, expires_at=NOW + 10)
    assert cookies.redeem(STATE, pair, NOW + 9.9)[0] is not None
    found, expire = cookies.redeem(STATE, pair, NOW + 10)
    assert found is None and expired_names(parsed(expire)) == [tx_name(COOKIE, STATE)]


def test_expired_by_the_encrypted_issue_time_whatever_expires_at_says(cookies: TransactionCookies) -> None:
    """Fernet's own timestamp (authenticated) bounds the cookie to transaction_ttl even if expires_at did not."""
    pair, _ = issue(cookies, expires_at=NOW + 100 * TTL)
    assert cookies.redeem(STATE, pair, NOW + TTL - 1)[0] is not None
    assert cookies.redeem(STATE, pair, NOW + TTL + 2)[0] is None
    assert cookies.redeem(STATE, pair, NOW + 50 * TTL)[0] is None


def test_the_ttl_follows_the_setting() -> None:
    short = TransactionCookies(make_config(transaction_ttl=30))
    pair, headers = issue(short, expires_at=NOW + 10_000)
    assert headers[0].attributes["max-age"] == "30"
    assert short.redeem(STATE, pair, NOW + 29)[0] is not None
    assert short.redeem(STATE, pair, NOW + 32)[0] is None


# -- refused, never an exception -------------------------------------------------------


def flip(value: str, at: int) -> str:
    return value[:at] + ("A" if value[at] != "A" else "B") + value[at + 1:]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda value: flip(value, len(value) // 2), id="tampered-middle"),
        pytest.param(lambda value: flip(value, 12), id="tampered-timestamp"),
        pytest.param(lambda value: flip(value, len(value) - 5), id="tampered-hmac"),
        pytest.param(lambda value: value[:-10], id="truncated"),
        pytest.param(lambda value: value[: len(value) // 2], id="truncated-half"),
        # before any "=" padding: base64 decoding ignores what follows the padding
        pytest.param(lambda value: value.rstrip("=") + "AAAA" + value[len(value.rstrip("=")):], id="extended"),
        pytest.param(lambda value: "", id="empty"),
        pytest.param(lambda value: "garbage", id="garbage"),
        pytest.param(lambda value: "%%%***", id="not-base64"),
        pytest.param(lambda value: "\u00e9\u00ff\u00a0" * 20, id="latin-1"),
        pytest.param(lambda value: "A" * 5000, id="oversized"),
        pytest.param(lambda value: base64.urlsafe_b64encode(b"\x80" + b"\0" * 100).decode(), id="fernet-shaped"),
    ],
)
def test_a_damaged_cookie_is_refused_without_an_exception(cookies: TransactionCookies, mutate: Any) -> None:
    pair, _ = issue(cookies)
    damaged = mutate(value_of(pair))
    assert damaged != value_of(pair)
    found, expire = cookies.redeem(STATE, f"{tx_name(COOKIE, STATE)}={damaged}", NOW + 1)
    assert found is None
    assert expired_names(parsed(expire)) == [tx_name(COOKIE, STATE)]


def test_a_cookie_of_another_middleware_is_refused(cookies: TransactionCookies) -> None:
    """Another deployment (another session_secret) with the same cookie name: its cookies are nothing here."""
    theirs = TransactionCookies(make_config(session_secret="another-secret-" + "t" * 30))
    pair, _ = issue(theirs)
    assert theirs.redeem(STATE, pair, NOW)[0] is not None  # the control: valid where it was issued
    assert cookies.redeem(STATE, pair, NOW)[0] is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda record: {k: v for k, v in record.items() if k != "nonce"}, id="missing-field"),
        pytest.param(lambda record: {**record, "added_later": 1}, id="unknown-field"),
        pytest.param(lambda record: {k: v for k, v in record.items() if k != "state"}, id="no-state"),
        pytest.param(lambda record: {**record, "state": [STATE]}, id="state-not-text"),
        pytest.param(lambda record: STATE, id="a-string"),
        pytest.param(lambda record: [record], id="a-list"),
    ],
)
def test_an_authentic_record_of_another_shape_is_refused(cookies: TransactionCookies, change: Any) -> None:
    """E.g. a cookie issued by another version of the middleware during a rolling upgrade.

    Written with the key derived as the module does (so this also pins the derivation: changing it
    would make every sign-in in flight fail at an upgrade).
    """
    fernet = fernet_for_tests()
    record = dict(asdict(transaction()), state=STATE)
    control = fernet.encrypt_at_time(json.dumps(record).encode(), int(NOW)).decode()
    assert cookies.redeem(STATE, f"{tx_name(COOKIE, STATE)}={control}", NOW + 1)[0] == transaction()
    value = fernet.encrypt_at_time(json.dumps(change(record)).encode(), int(NOW)).decode()
    found, expire = cookies.redeem(STATE, f"{tx_name(COOKIE, STATE)}={value}", NOW + 1)
    assert found is None and len(expire) == 1


# -- confidentiality and flags --------------------------------------------------------------


def test_the_verifier_and_nonce_cannot_be_read_in_the_cookie(cookies: TransactionCookies) -> None:
    stored = transaction()
    pair, _ = issue(cookies)
    value = value_of(pair)
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for secret in (stored.code_verifier, stored.nonce, stored.target_url, STATE, "dashboard", "verifier", "nonce"):
        assert secret not in value, secret
        assert secret.encode() not in raw, secret
    # Two cookies of the very same transaction differ (random IV): nothing to compare between them.
    assert value_of(issue(cookies)[0]) != value


def test_the_cookie_flags_on_https(cookies: TransactionCookies) -> None:
    pair, headers = issue(cookies)
    (new,) = headers
    assert new.attributes == {"httponly": "", "samesite": "Lax", "path": "/", "max-age": str(TTL), "secure": ""}
    (expiry,) = parsed(cookies.redeem(STATE, pair, NOW)[1])
    assert expiry.value == ""
    assert expiry.attributes == {"httponly": "", "samesite": "Lax", "path": "/", "max-age": "0", "secure": ""}


def test_no_secure_flag_on_an_http_loopback_base_url() -> None:
    plain = TransactionCookies(make_config(issuer="http://127.0.0.1:8999/", base_url="http://127.0.0.1:8080",
                                           allow_insecure_http=True))
    headers = parsed(plain.issue(STATE, transaction(), "", NOW))
    (new,) = headers
    assert new.name == tx_name("sso_session", STATE, "http://127.0.0.1:8080")  # no __Host- prefix without https
    assert not new.name.startswith("__")
    assert new.attributes == {"httponly": "", "samesite": "Lax", "path": "/", "max-age": str(TTL)}
    (expiry,) = parsed(plain.redeem(STATE, f"{new.name}={new.value}", NOW)[1])
    assert "secure" not in expiry.attributes


def test_host_only_even_when_the_session_cookie_has_a_domain() -> None:
    shared = TransactionCookies(make_config(cookie_domain="app2.example"))
    (new,) = parsed(shared.issue(STATE, transaction(), "", NOW))
    assert new.name == tx_name("sso_session", STATE)
    assert "domain" not in new.attributes and "secure" in new.attributes


# -- the cap -------------------------------------------------------------------------


def browser_with(cookies: TransactionCookies, count: int, garbage: int = 0, seed: int = 0) -> tuple[str, list[str]]:
    """A Cookie header with ``count`` real transactions (issued one second apart, in shuffled order) and
    ``garbage`` unreadable ones; and the names of the real ones, oldest first."""
    pairs = [issue(cookies, state=st(f"tab-{index}"), now=NOW + index)[0] for index in range(count)]
    names = [pair.partition("=")[0] for pair in pairs]
    junk = [f"{tx_name(COOKIE, f'junk-{index}')}=junk{index}" for index in range(garbage)]
    everything = pairs + junk
    random.Random(seed).shuffle(everything)
    return "; ".join(everything), names


def test_below_the_cap_nothing_is_expired(cookies: TransactionCookies) -> None:
    header, _ = browser_with(cookies, MAX_TRANSACTIONS - 1)
    _, headers = issue(cookies, state=st("new"), now=NOW + 100, header=header)
    assert expired_names(headers) == []


@pytest.mark.parametrize("seed", range(4))
def test_at_the_cap_a_new_one_expires_the_oldest_by_issue_time(cookies: TransactionCookies, seed: int) -> None:
    header, names = browser_with(cookies, MAX_TRANSACTIONS, seed=seed)
    _, headers = issue(cookies, state=st("new"), now=NOW + 100, header=header)
    assert expired_names(headers) == [names[0]]
    assert tx_name(COOKIE, st("new")) not in expired_names(headers)


def test_beyond_the_cap_the_oldest_go_until_the_new_one_fits(cookies: TransactionCookies) -> None:
    header, names = browser_with(cookies, MAX_TRANSACTIONS + 3, seed=7)
    _, headers = issue(cookies, state=st("new"), now=NOW + 100, header=header)
    assert sorted(expired_names(headers)) == sorted(names[:4])


@pytest.mark.parametrize("seed", range(3))
def test_unreadable_ones_are_expired_first(cookies: TransactionCookies, seed: int) -> None:
    header, names = browser_with(cookies, MAX_TRANSACTIONS - 2, garbage=3, seed=seed)
    _, headers = issue(cookies, state=st("new"), now=NOW + 100, header=header)
    expired = expired_names(headers)
    assert len(expired) == 2
    assert not set(expired) & set(names)  # every real one kept
    assert all(name in header for name in expired)


def test_another_middlewares_cookies_count_as_unreadable(cookies: TransactionCookies) -> None:
    theirs = TransactionCookies(make_config(session_secret="another-secret-" + "t" * 30))
    foreign, _ = issue(theirs, state=st("foreign"), now=NOW + 50)  # newer than all of ours, but not ours to read
    header, _ = browser_with(cookies, MAX_TRANSACTIONS - 1)
    _, headers = issue(cookies, state=st("new"), now=NOW + 100, header=f"{foreign}; {header}")
    assert expired_names(headers) == [tx_name(COOKIE, st("foreign"))]


def test_the_cap_leaves_other_cookies_alone(cookies: TransactionCookies) -> None:
    """Only names of the form we issue count: not the session cookie, not look-alikes that are not even
    legal cookie names (expiring those would be a 500), not other applications' cookies."""
    header, _ = browser_with(cookies, MAX_TRANSACTIONS - 1)
    prefix = tx_prefix(COOKIE)
    odd = [f"{COOKIE}=session-id", f"{prefix}=x", f"{prefix}short=x", f"{prefix}a b c=x",
           f"{prefix}{'0' * 16}x=x", f"{prefix}{'A' * 16}=x", f"{prefix}\u00e9\u00e9=x",
           f"{prefix}x,y=x", 'prefs={"a":1}', "other_tx_0123456789abcdef=x",
           f"{COOKIE}_tx_{'0' * 16}=x",  # the names of the previous version
           f"{tx_prefix(COOKIE, 'https://app2.example/other')}{'0' * 16}=x"]  # another app on this origin
    _, headers = issue(cookies, state=st("new"), now=NOW + 100, header="; ".join([header, *odd]))
    assert expired_names(headers) == []


def test_the_cookie_a_silent_retry_replaces_does_not_count(cookies: TransactionCookies) -> None:
    """A callback retrying a silent sign-in expires its own cookie and issues one: no other tab may pay for it."""
    header, names = browser_with(cookies, MAX_TRANSACTIONS)
    spent = st("tab-3")  # not the oldest
    _, headers = issue(cookies, state=st("retry"), now=NOW + 100, header=header, spent=spent)
    assert expired_names(headers) == []
    # Without it, the oldest would have gone (the control).
    _, headers = issue(cookies, state=st("retry"), now=NOW + 100, header=header)
    assert expired_names(headers) == [names[0]]


def test_an_issued_transaction_is_the_newest_for_the_next_cap(cookies: TransactionCookies) -> None:
    """Tabs opened one after another: the cap always drops the earliest, never the one just issued."""
    jar: dict[str, str] = {}
    for index in range(MAX_TRANSACTIONS + 4):
        header = "; ".join(f"{k}={v}" for k, v in jar.items())
        _, headers = issue(cookies, state=st(f"tab-{index}"), now=NOW + index, header=header)
        for cookie in headers:
            if cookie.expires_it:
                jar.pop(cookie.name)
            else:
                jar[cookie.name] = cookie.value
        assert len(jar) <= MAX_TRANSACTIONS
    kept = sorted(jar)
    assert kept == sorted(tx_name(COOKIE, st(f"tab-{index}")) for index in range(4, MAX_TRANSACTIONS + 4))


# -- parsing the Cookie header ----------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        pytest.param('prefs={"theme":"dark"}', id="json-value"),
        pytest.param("greeting=hello world", id="space"),
        pytest.param('quoted=a"b', id="stray-quote"),
        pytest.param("path=a\\b", id="backslash"),
        pytest.param("[weird]=1", id="odd-name"),
        pytest.param("novalue", id="no-equals"),
        pytest.param(";;  ;", id="empty-parts"),
        pytest.param("=orphan", id="no-name"),
        pytest.param("\u00e9t\u00e9=\u00ff", id="latin-1"),
        pytest.param(f"{COOKIE}=abc; other_app_session=zzz", id="session-and-siblings"),
    ],
)
@pytest.mark.parametrize("position", ["before", "after"])
def test_odd_other_cookies_do_not_break_parsing(cookies: TransactionCookies, other: str, position: str) -> None:
    pair, _ = issue(cookies)
    header = f"{other}; {pair}" if position == "before" else f"{pair}; {other}"
    assert cookies.redeem(STATE, header, NOW)[0] == transaction()
    _, headers = issue(cookies, state=st("new"), now=NOW + 1, header=header)
    assert expired_names(headers) == []


def test_a_quoted_value_and_spaces_are_read(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies)
    name, _, value = pair.partition("=")
    assert cookies.redeem(STATE, f'  {name} = "{value}"  ', NOW)[0] == transaction()


# -- step-up fields ---------------------------------------------------------------------


def fernet_for_tests() -> Fernet:
    """The transaction cookies' key, derived as the module does (pinned by the shape test above too).

    HMAC-SHA256 of ``session_secret`` over the purpose, the issuer and the client id
    (:func:`sso_middleware._sealing.app_key`): another application sharing the secret has another key.
    """
    message = json.dumps(["sso_middleware", "sign-in transactions", ISSUER, CLIENT_ID]).encode()
    return Fernet(base64.urlsafe_b64encode(hmac.new(SESSION_SECRET.encode(), message, hashlib.sha256).digest()))


def record_in(pair: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(fernet_for_tests().decrypt(value_of(pair).encode()))
    return record


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"max_age": 300}, id="max-age"),
        pytest.param({"max_age": 0}, id="max-age-zero"),
        pytest.param({"acr_values": "urn:dev:loa:mfa"}, id="acr-values"),
        pytest.param({"acr_values": 'urn:a urn:b a"b c\\d'}, id="several-acr-values"),
        pytest.param({"max_age": 60, "acr_values": "urn:dev:loa:mfa", "prompt": None}, id="both"),
    ],
)
def test_the_step_up_fields_round_trip(cookies: TransactionCookies, fields: dict[str, Any]) -> None:
    pair, _ = issue(cookies, **fields)
    found = cookies.redeem(STATE, pair, NOW + 1)[0]
    assert found == transaction(**fields)
    assert found is not None
    for name, value in fields.items():
        assert getattr(found, name) == value
    record = record_in(pair)
    assert {key: record[key] for key in fields} == fields


def test_unset_step_up_fields_are_not_written(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies)
    record = record_in(pair)
    assert "max_age" not in record and "acr_values" not in record
    # The fields that were always there still are, None or not.
    assert set(record) == {"nonce", "code_verifier", "target_url", "connection", "prompt", "expires_at", "state"}
    pair, _ = issue(cookies, connection=None, prompt=None)
    assert record_in(pair)["connection"] is None and record_in(pair)["prompt"] is None
    found = cookies.redeem(STATE, pair, NOW)[0]
    assert found is not None and (found.max_age, found.acr_values) == (None, None)


def test_unset_step_up_fields_keep_the_cookie_as_short_as_before(cookies: TransactionCookies) -> None:
    plain, _ = issue(cookies)
    stepped, _ = issue(cookies, max_age=300, acr_values="urn:dev:loa:mfa")
    assert len(value_of(stepped)) > len(value_of(plain))
    old_style = fernet_for_tests().encrypt_at_time(
        json.dumps(dict(asdict(transaction()), state=STATE)).encode(), int(NOW)).decode()
    assert len(value_of(plain)) < len(old_style)  # "max_age": null, "acr_values": null are not written


def test_a_cookie_from_before_the_step_up_fields_still_redeems(cookies: TransactionCookies) -> None:
    """Issued by the previous version during a rolling upgrade: no max_age or acr_values keys at all."""
    record = {key: value for key, value in asdict(transaction()).items() if key not in ("max_age", "acr_values")}
    value = fernet_for_tests().encrypt_at_time(json.dumps(dict(record, state=STATE)).encode(), int(NOW)).decode()
    found, expire = cookies.redeem(STATE, f"{tx_name(COOKIE, STATE)}={value}", NOW + 1)
    assert found == transaction()
    assert found is not None and (found.max_age, found.acr_values) == (None, None)
    assert len(expire) == 1


def test_step_up_fields_are_encrypted_like_the_rest(cookies: TransactionCookies) -> None:
    pair, _ = issue(cookies, max_age=300, acr_values="urn:dev:loa:mfa")
    value = value_of(pair)
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for secret in ("urn:dev:loa:mfa", "max_age", "acr_values"):
        assert secret not in value and secret.encode() not in raw, secret


# -- the state's shape (issue 13, item 12) ------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        pytest.param("\u00e9" * 43, id="latin-1-letters"),
        pytest.param("state-caf\u00e9-" + "x" * 31, id="one-non-ascii"),
        pytest.param("\U0001f600" * 43, id="astral"),
        pytest.param("\udcff" * 43, id="lone-surrogates"),
        pytest.param("a" * 42, id="too-short"),
        pytest.param("a" * 44, id="too-long"),
        pytest.param("a" * 42 + "=", id="padding"),
        pytest.param("a" * 42 + "+", id="plain-base64"),
        pytest.param("a b" + "c" * 40, id="space"),
        pytest.param("", id="empty"),
    ],
)
def test_a_state_of_another_shape_is_refused_before_any_lookup(cookies: TransactionCookies, state: str) -> None:
    """Even with a genuine cookie under the name of that state: nothing is read, nothing raises."""
    pair, _ = issue(cookies)
    renamed = f"{cookies.name_for(state)}={value_of(pair)}"
    assert cookies.redeem(state, f"{renamed}; {pair}", NOW) == (None, [])
    assert cookies.redeem(STATE, pair, NOW)[0] is not None  # the control


def test_the_states_we_issue_have_the_accepted_shape() -> None:
    from sso_middleware._oidc.client import OIDCClient
    from sso_middleware._wsgi.transactions import is_valid_state

    for _ in range(50):
        assert is_valid_state(OIDCClient.new_login_request().state)


def test_a_record_whose_state_is_not_ascii_is_refused_without_an_exception(cookies: TransactionCookies) -> None:
    record = dict(asdict(transaction()), state="\u00e9" * 43)
    value = fernet_for_tests().encrypt_at_time(json.dumps(record).encode(), int(NOW)).decode()
    found, expire = cookies.redeem(STATE, f"{tx_name(COOKIE, STATE)}={value}", NOW + 1)
    assert found is None and len(expire) == 1


# -- names: __Host- on https, one part per application (issue 13, item 17) ---------------------


@pytest.mark.parametrize("settings", [{}, {"cookie_domain": "app2.example"}, {"cookie_name": "app2_sso"},
                                      {"cookie_name": "__Secure-app2", "cookie_domain": ".app2.example"},
                                      {"base_url": BASE_URL + "/app1"}])
def test_on_https_the_names_are_always_host_prefixed(settings: dict[str, Any]) -> None:
    """A sibling subdomain can plant any cookie except a __Host- one (Secure, Path=/, no Domain)."""
    config = make_config(**settings)
    (new,) = parsed(TransactionCookies(config).issue(STATE, transaction(), "", NOW))
    assert new.name.startswith("__Host-") and new.name.count("__Host-") == new.name.count("__") == 1
    assert new.name == tx_name(config.session_cookie_name, STATE, config.base_url)
    assert new.attributes["path"] == "/" and "secure" in new.attributes and "domain" not in new.attributes


def test_a_cookie_under_the_unprefixed_name_is_not_read() -> None:
    shared = TransactionCookies(make_config(cookie_domain="app2.example"))
    pair, _ = issue(shared, header="")
    planted = [pair.removeprefix("__Host-"), f"sso_session_tx_{hashlib.sha256(STATE.encode()).hexdigest()[:16]}"
                                              f"={value_of(pair)}"]
    assert shared.redeem(STATE, "; ".join(planted), NOW) == (None, [])
    assert shared.redeem(STATE, pair, NOW)[0] is not None  # the control


def test_apps_under_other_paths_of_the_origin_neither_read_nor_expire_each_others() -> None:
    app1 = TransactionCookies(make_config(base_url=BASE_URL + "/app1"))
    app2 = TransactionCookies(make_config(base_url=BASE_URL + "/app2"))
    assert app1.name_for(STATE) != app2.name_for(STATE)
    theirs = [f"{name}={value}" for name, value in (
        (app2.name_for(st(f"t{index}")), value_of(pair_for(app2, st(f"t{index}"))))
        for index in range(MAX_TRANSACTIONS))]
    headers = parsed(app1.issue(st("mine"), transaction(), "; ".join(theirs), NOW + 10))
    assert expired_names(headers) == []
    assert app1.redeem(st("t0"), "; ".join(theirs), NOW) == (None, [])


def pair_for(cookies: TransactionCookies, state: str, now: float = NOW, **fields: Any) -> str:
    (new, *_) = parsed(cookies.issue(state, transaction(now, **fields), "", now))
    return f"{new.name}={new.value}"


# -- the total size (issue 13, item 6) ---------------------------------------------------------


LONG_TARGET = "/search?q=" + "a" * 2030  # about the longest target checked_target accepts (2048)


def jar_after(cookies: TransactionCookies, jar: dict[str, str], headers: list[SetCookie]) -> dict[str, str]:
    for cookie in headers:
        if cookie.expires_it:
            jar.pop(cookie.name, None)
        else:
            jar[cookie.name] = cookie.value
    return jar


def header_of(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


def test_six_ordinary_sign_ins_fit_the_budget(cookies: TransactionCookies) -> None:
    """The count cap, not the size, limits ordinary tabs: the budget is big enough for MAX_TRANSACTIONS."""
    jar: dict[str, str] = {}
    for index in range(MAX_TRANSACTIONS):  # a verifier as long as ours (64), Auth0's connection, a deep link
        _, headers = issue(cookies, state=st(f"tab-{index}"), now=NOW + index, header=header_of(jar),
                           code_verifier="v" * 64, target_url="/orders/2026/12?status=open&sort=-date&page=3")
        assert expired_names(headers) == []
        jar_after(cookies, jar, headers)
    assert len(jar) == MAX_TRANSACTIONS
    assert len(header_of(jar)) + 2 <= COOKIE_BUDGET


def test_a_flood_of_long_targets_stays_within_the_budget_and_keeps_the_newest(cookies: TransactionCookies) -> None:
    jar: dict[str, str] = {}
    for index in range(30):
        _, headers = issue(cookies, state=st(f"bomb-{index}"), now=NOW + index, header=header_of(jar),
                           target_url=LONG_TARGET)
        jar_after(cookies, jar, headers)
        assert len(header_of(jar)) + 2 <= COOKIE_BUDGET, (index, len(header_of(jar)))
        assert tx_name(COOKIE, st(f"bomb-{index}")) in jar  # the newest is always kept
    _, headers = issue(cookies, state=st("mine"), now=NOW + 40, header=header_of(jar))
    jar_after(cookies, jar, headers)
    assert len(header_of(jar)) + 2 <= COOKIE_BUDGET
    assert cookies.redeem(st("mine"), header_of(jar), NOW + 41)[0] == transaction(NOW + 40)


def test_room_is_made_by_expiring_the_oldest_first(cookies: TransactionCookies) -> None:
    jar: dict[str, str] = {}
    for index in range(3):
        _, headers = issue(cookies, state=st(f"tab-{index}"), now=NOW + index, header=header_of(jar))
        jar_after(cookies, jar, headers)
    _, headers = issue(cookies, state=st("long"), now=NOW + 10, header=header_of(jar), target_url=LONG_TARGET)
    expired = expired_names(headers)
    assert expired and expired == [tx_name(COOKIE, st(f"tab-{index}")) for index in range(len(expired))]
    jar_after(cookies, jar, headers)
    assert len(header_of(jar)) + 2 <= COOKIE_BUDGET
    assert tx_name(COOKIE, st("tab-2")) in jar  # only as many as needed went


def test_a_transaction_too_big_for_the_budget_alone_is_refused(cookies: TransactionCookies) -> None:
    """Only a ~2 KB target of quotes (JSON doubles them) can: a clear 400, not a cookie the browser drops."""
    with pytest.raises(AuthFailure) as refused:
        cookies.issue(STATE, transaction(target_url="/" + '"' * 2047), "", NOW)
    assert refused.value.code == "invalid_target_url"
    issue(cookies, target_url=LONG_TARGET)  # the control: the longest ordinary target fits


def test_a_transaction_hides_its_secrets_in_repr() -> None:
    # error reporters that capture locals would send the PKCE verifier and the nonce away
    value = transaction(nonce="MARK-nonce", code_verifier="MARK-verifier")
    for text in (repr(value), str(value)):
        assert "MARK-" not in text, text
        assert "/dashboard?tab=2" in text


# -- response_mode = form_post; several base_url origins (issue 14 parts 6 and 7) --------------------


@pytest.mark.parametrize(("base_url", "name_prefix"), [
    (BASE_URL, "__Host-"),
    ("http://127.0.0.1:5001", ""),  # http loopback: Secure anyway (Chromium keeps it there), no __Host- prefix
])
def test_form_post_transaction_cookies_are_samesite_none_and_secure(base_url: str, name_prefix: str) -> None:
    config = make_config(response_mode="form_post", base_url=base_url, allow_insecure_http=True)
    cookies = TransactionCookies(config)
    (issued,) = parsed(cookies.issue(STATE, transaction(), "", NOW))
    assert issued.name.startswith(name_prefix + config.session_cookie_name.removeprefix("__Host-") + "_tx_")
    assert issued.attributes["samesite"] == "None" and "secure" in issued.attributes
    assert "httponly" in issued.attributes and issued.attributes["path"] == "/" and "domain" not in issued.attributes
    found, expire = cookies.redeem(STATE, f"{issued.name}={issued.value}", NOW)
    assert found == transaction()
    (expiry,) = parsed(expire)  # the expiry carries the same attributes, or the browser would keep the cookie
    assert expiry.expires_it and expiry.attributes["samesite"] == "None" and "secure" in expiry.attributes


def test_query_mode_transaction_cookies_stay_lax() -> None:
    (issued,) = parsed(TransactionCookies(make_config()).issue(STATE, transaction(), "", NOW))
    assert issued.attributes["samesite"] == "Lax" and "secure" in issued.attributes
    http = TransactionCookies(make_config(base_url="http://127.0.0.1:5001", allow_insecure_http=True))
    (plain,) = parsed(http.issue(STATE, transaction(), "", NOW))
    assert plain.attributes["samesite"] == "Lax" and "secure" not in plain.attributes


def test_the_redirect_uri_round_trips_and_listing_more_origins_keeps_the_names() -> None:
    several = TransactionCookies(make_config(base_url=f"{BASE_URL} https://intranet.corp.example"))
    uri = "https://intranet.corp.example/auth/callback"
    pair, _ = issue(several, redirect_uri=uri)  # issue() asserts the name: tx_name of the first base_url
    found, _ = several.redeem(STATE, pair, NOW)
    assert found is not None and found.redirect_uri == uri
    assert TransactionCookies(make_config()).redeem(STATE, pair, NOW)[0] is not None  # one app, same key and name
