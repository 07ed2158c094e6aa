"""The PEM files TLS settings name: trust stores, client certificates and keys, checked when the middleware is built.

Used for the provider (``ca_bundle``, ``tls_client_cert``/``tls_client_key``) and for the
session store (``session_tls_ca_file``, ``session_tls_cert_file``/``session_tls_key_file``):
every error is one :class:`~sso_middleware.errors.ConfigError` naming the setting given.

Security caveat: a key must be unencrypted (OpenSSL would otherwise prompt for its
passphrase on the terminal at each connection): protect it by file permissions.  Errors
name the setting and the path, never the content of a key.
"""

from __future__ import annotations

import os
import re
import ssl
import time
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..errors import ConfigError
from .setting_files import read_setting_file

_HASHED_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
_PEM_LIMIT = 4 * 1024 * 1024  # a trust bundle is a few hundred kB; refuse to read a huge file at start
#: A client certificate expiring within this many seconds is worth a warning.
_RENEW_WITHIN = 30 * 86400


def count_ca_certificates(path: str, setting: str = "ca_bundle") -> int:
    """How many CA certificates ``path`` (a PEM file, or a folder of hashed PEM files) holds; at least 1."""
    if os.path.isdir(path):
        count = 0
        for name in sorted(os.listdir(path)):
            if _HASHED_NAME.match(name) and os.path.isfile(os.path.join(path, name)):
                count += len(_read_certificates(setting, os.path.join(path, name)))
        if not count:
            raise ConfigError(setting, f"folder {path!r} holds no hashed certificate files (NNNNNNNN.0); "
                                       "run c_rehash (openssl rehash) on it, or give a PEM file")
        return count
    certificates = _read_certificates(setting, path)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(setting, f"{path!r} cannot be used as a trust store ({type(exc).__name__})") from None
    return len(certificates)


def check_client_certificate(cert: str, key: str, cert_setting: str = "tls_client_cert",
                             key_setting: str = "tls_client_key") -> x509.Certificate:
    """The client certificate, after checking that both PEM files load and the key matches it."""
    first = _read_certificates(cert_setting, cert)[0]
    try:
        serialization.load_pem_private_key(_read_pem(key_setting, key), password=None)
    except TypeError:  # an encrypted key: OpenSSL would ask for its passphrase on the terminal at each connection
        raise ConfigError(key_setting, "is encrypted; give an unencrypted PEM private key "
                                       "(protect it by file permissions)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(key_setting, "is not an unencrypted PEM private key") from None
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as exc:
        reason = f"does not match {cert_setting}" if "KEY_VALUES_MISMATCH" in str(exc) else \
            "is not an unencrypted PEM private key"
        raise ConfigError(key_setting, reason) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(key_setting, f"cannot be loaded ({type(exc).__name__})") from None
    return first


def certificate_validity(cert: x509.Certificate, setting: str) -> tuple[Literal["FAIL", "WARN", "OK"], str]:
    """The doctor's verdict on a client certificate's dates: ("FAIL" | "WARN" | "OK", a one-line message)."""
    now = time.time()
    until = cert.not_valid_after_utc.timestamp()
    subject = cert.subject.rfc4514_string()
    expires = time.strftime("%Y-%m-%d", time.gmtime(until))
    if until < now or cert.not_valid_before_utc.timestamp() > now:
        return "FAIL", f"{setting} {subject} is not valid now (valid until {expires}): renew it"
    if until - now < _RENEW_WITHIN:
        return "WARN", f"{setting} {subject} expires on {expires}: renew it soon"
    return "OK", f"{setting} {subject}, issued by {cert.issuer.rfc4514_string()}, valid until {expires}"


def _no_passphrase() -> str:
    raise ValueError("no passphrase")  # never a prompt on the terminal


def _read_pem(name: str, path: str) -> bytes:
    data = read_setting_file(name, path, _PEM_LIMIT)
    if b"-----BEGIN " not in data:
        raise ConfigError(name, f"{path!r} is not a PEM file (no -----BEGIN line)")
    return data


def _read_certificates(name: str, path: str) -> list[x509.Certificate]:
    data = _read_pem(name, path)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(name, f"{path!r} holds no PEM certificate that can be parsed") from None
    return certificates
