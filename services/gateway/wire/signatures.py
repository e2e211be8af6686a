"""Signed headers, as some provinces' gateways authenticate a HIS instead of a client certificate.

A HIS sends ``_api_access_key`` (its key), ``_api_name`` (the transaction, ``infno``),
``_api_timestamp`` (milliseconds since the Unix epoch), ``_api_version`` and
``_api_signature``: base64 of HMAC-SHA256, keyed with the access key's secret, over the
sorted ``k=v&k=v`` string of the other four headers followed by ``body_sha256=<hex>``, so the
body is signed too. A timestamp more than ``SIGNATURE_WINDOW`` away from the gateway's clock,
either way, is refused: a captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

SIGNATURE_WINDOW: timedelta = timedelta(minutes=5)
HEADERS = ("_api_access_key", "_api_name", "_api_timestamp", "_api_version", "_api_signature")
SIGNED_HEADERS = tuple(name for name in HEADERS if name != "_api_signature")
API_VERSION = "1.0.0"

SIGNATURE_MISSING = "SIGNATURE_MISSING"
UNKNOWN_ACCESS_KEY = "UNKNOWN_ACCESS_KEY"
BAD_SIGNATURE = "BAD_SIGNATURE"
TIMESTAMP_OUT_OF_WINDOW = "TIMESTAMP_OUT_OF_WINDOW"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_SHOWN = 64
# Header values joined by "&" and "=" must not hold them, or one string could be read as
# another split of the same headers.
_HEADER_VALUE = re.compile(r"[!-%'-<>-~]{1,256}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_ACCESS_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_INSTITUTION_CODE = re.compile(r"[A-Za-z0-9]{12}")


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    institution_code: str
    # Kept out of repr, so a logged key shows no secret.
    secret: bytes = field(repr=False)


class SignatureRefused(Exception):
    """Signed headers that do not authenticate the request; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"[{reason}] {message}")
        self.reason = reason
        self.message = message


def load_access_keys(path: Path) -> dict[str, AccessKey]:
    """The access keys in a JSON file ``{"keys": [{"access_key", "institution_code", "secret"}]}``,
    by access key. The secret is its text's UTF-8 bytes. ValueError, naming the file and the
    entry, for a missing or unreadable file, bad JSON, a missing or empty field, an access key
    of other characters than letters, digits and ``_.-``, an institution code that is not 12
    letters and digits, or an access key given twice. No message shows a secret."""
    try:
        content = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"access keys file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"access keys file {path}: cannot be read ({error.__class__.__name__})") from None
    try:
        document = json.loads(content)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"access keys file {path}: not JSON: {error.msg} (line {error.lineno} column {error.colno})"
        ) from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'access keys file {path}: expected {{"keys": [...]}}, an object holding a list')
    keys: dict[str, AccessKey] = {}
    for index, entry in enumerate(entries):
        where = f"access keys file {path}, keys[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object with access_key, institution_code and secret")
        for name in ("access_key", "institution_code", "secret"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise ValueError(f"{where}: {name} is missing or empty; it must be non-empty text")
        access_key, code, secret = entry["access_key"], entry["institution_code"], entry["secret"]
        if _ACCESS_KEY.fullmatch(access_key) is None:
            raise ValueError(f"{where}: access_key {_shown(access_key)} is not 1-64 letters, digits, '_', '.', '-'")
        if _INSTITUTION_CODE.fullmatch(code) is None:
            raise ValueError(f"{where}: institution_code {_shown(code)} is not 12 letters and digits")
        if access_key in keys:
            raise ValueError(f"{where}: access_key {access_key!r} is given twice")
        keys[access_key] = AccessKey(access_key, code, secret.encode("utf-8"))
    return keys


def string_to_sign(headers: Mapping[str, str], body: bytes) -> str:
    """``_api_access_key=…&_api_name=…&_api_timestamp=…&_api_version=…&body_sha256=<hex>``:
    the signed headers and the body's SHA-256, sorted by name. KeyError if a header is absent."""
    pairs = {name: headers[name] for name in SIGNED_HEADERS}
    pairs["body_sha256"] = hashlib.sha256(body).hexdigest()
    return "&".join(f"{name}={pairs[name]}" for name in sorted(pairs))


def sign(key: AccessKey, infno: str, body: bytes, at: datetime) -> dict[str, str]:
    """The headers a HIS sends with ``body`` for transaction ``infno`` at the moment ``at``."""
    headers = {
        "_api_access_key": key.access_key,
        "_api_name": infno,
        "_api_timestamp": str(_milliseconds(at)),
        "_api_version": API_VERSION,
    }
    headers["_api_signature"] = _signature(key.secret, string_to_sign(headers, body))
    return headers


def verify(headers: Mapping[str, str], body: bytes, keys: Mapping[str, AccessKey], now: datetime) -> str:
    """The institution code of the access key that signed the request; SignatureRefused otherwise.

    In order: a header absent or empty is SIGNATURE_MISSING; a key not in ``keys``,
    UNKNOWN_ACCESS_KEY; a malformed value or a signature that does not match (compared in
    constant time), BAD_SIGNATURE; a timestamp more than SIGNATURE_WINDOW before or after
    ``now``, TIMESTAMP_OUT_OF_WINDOW. The signature is checked before the window, so only the
    holder of the secret learns that the clock, not the secret, was wrong."""
    missing = [name for name in HEADERS if not headers.get(name)]
    if missing:
        raise SignatureRefused(
            SIGNATURE_MISSING, f"header {missing[0]} is missing; a signed request sends {', '.join(HEADERS)}"
        )
    access_key = headers["_api_access_key"]
    key = keys.get(access_key)
    if key is None:
        raise SignatureRefused(UNKNOWN_ACCESS_KEY, f"_api_access_key {_shown(access_key)} is not a known key")
    for name in SIGNED_HEADERS:
        if _HEADER_VALUE.fullmatch(headers[name]) is None:
            raise SignatureRefused(
                BAD_SIGNATURE, f"header {name} must be 1-256 printable ASCII characters without '&' or '='"
            )
    timestamp = headers["_api_timestamp"]
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise SignatureRefused(BAD_SIGNATURE, f"_api_timestamp {_shown(timestamp)} is not milliseconds since 1970")
    expected = _signature(key.secret, string_to_sign(headers, body)).encode("ascii")
    # Bytes on both sides: compare_digest refuses non-ASCII text, and a HIS may send anything.
    if not hmac.compare_digest(expected, headers["_api_signature"].encode("utf-8", "surrogatepass")):
        raise SignatureRefused(
            BAD_SIGNATURE, "_api_signature does not match base64(HMAC-SHA256(secret, string to sign))"
        )
    skew = abs(_milliseconds(now) - int(timestamp)) * _MILLISECOND
    if skew > SIGNATURE_WINDOW:
        raise SignatureRefused(
            TIMESTAMP_OUT_OF_WINDOW,
            f"_api_timestamp is {skew.total_seconds():.0f} s from the gateway's clock; "
            f"at most {SIGNATURE_WINDOW.total_seconds():.0f} s is accepted",
        )
    return key.institution_code


def _signature(secret: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(secret, text.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")


def _milliseconds(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime names no moment; give one with a time zone")
    return (at - _EPOCH) // _MILLISECOND


def _shown(value: str) -> str:
    if len(value) > _SHOWN:
        value = value[: _SHOWN - 1] + "…"
    return repr(value)
