"""Remove secrets before anything is stored or shown.

Keys are matched after lower-casing and dropping everything but letters and
digits, so ``api_key``, ``X-Api-Key`` and ``apiKey`` all match ``apikey``. A key
is sensitive when it *contains* a denylisted name (``ERROR_SCRUB_KEYS``:
``X-Amz-Signature`` contains ``signature``) or *is* one of the short names that
would match too much as a part of a word (``ERROR_SCRUB_EXACT_KEYS``: ``key``,
``sig``, ``pwd``, ``pass``, ``auth``; ``monkey`` is not a key).

Strings are cleaned of: ``name=value`` / ``name: value`` pairs with a sensitive
name (also quoted, the value up to its closing quote: ``'password': 'a b c'``);
multipart form fields with a sensitive name; bearer and basic credentials;
passwords in URLs (``scheme://user:password@host``); and card numbers (13 to 19
digits, not starting with 0, passing the Luhn check, and not part of a UUID).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from controlplane.lib.uuids import UUID_PATTERN

FILTERED = "[Filtered]"
DEFAULT_DENYLIST = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "csrf",
    "private_key",
    "credit_card",
    "card_number",
    "signature",
    "jwt",
    "access_token",
    "refresh_token",
    "client_secret",
)
DEFAULT_EXACT_KEYS = ("key", "sig", "pwd", "pass", "auth")
_MAX_DEPTH = 20

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
_CARD = re.compile(r"(?<!\d)[1-9](?:[ -]?\d){12,18}(?!\d)")
_UUID = re.compile(UUID_PATTERN)
# The password in a URL's user info: postgresql://app:<password>@db:5432/app
# (Bounded repeats: unbounded, a long "a-a-a-..." word makes this quadratic.)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://[^\s/?#@:]{0,256}:)([^\s/?#@]{1,1024})@")
# A multipart/form-data part: its name, the rest of its headers, the blank line, the value.
_FORM_FIELD = re.compile(
    r"(?i)(\bname=\"([^\"\r\n]{1,200})\"[^\r\n]{0,200}(?:\r?\n[^\r\n]{1,400}){0,8}\r?\n\r?\n)"
    r"([^\r\n]{0,4096})"
)
# A value after its separator: quoted (to the closing quote, on one line), or a credential
# word pair, or up to whitespace, '&' (query strings), ',' or a quote.
_VALUE = (
    r"(\"[^\"\r\n]{0,1024}\"|'[^'\r\n]{0,1024}'"
    r"|(?:(?:bearer|basic|token)\s+)?[^\s&,\"']+)"
)


def _normalise(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _in_text(name: str) -> str:
    """A denylist name as written in free text, with or without separators: the entry
    ``api_key`` also matches ``api-key`` (``X-Api-Key: ...``) and ``apikey``."""
    return "[_-]?".join(re.escape(part) for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def _filtered_value(value: str) -> str:
    """FILTERED in place of ``value``, keeping the quotes it was written in."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{FILTERED}{value[0]}"
    return FILTERED


class Scrubber:
    def __init__(
        self, denylist: Iterable[str] = DEFAULT_DENYLIST, exact: Iterable[str] = DEFAULT_EXACT_KEYS
    ) -> None:
        denylist, exact = list(denylist), list(exact)
        self.needles = tuple(sorted({_normalise(item) for item in denylist if _normalise(item)}))
        self.exact = frozenset(_normalise(item) for item in exact if _normalise(item))
        names = "|".join(pattern for item in denylist if (pattern := _in_text(item))) or "(?!)"
        words = "|".join(pattern for item in exact if (pattern := _in_text(item))) or "(?!)"
        # key=value / key: value inside free text (query strings, log lines, headers),
        # also quoted as in JSON or repr text: "client_secret": "value".
        # A match starts only where a word starts, and a key is at most ~160 characters:
        # unanchored and unbounded, [\w-]* would backtrack over every long word, which
        # makes scrubbing quadratic in the word's length (seconds for one 10 KB word).
        self._pairs = re.compile(
            rf"(?i)(?<![\w-])([\w-]{{0,64}}(?:{names})[\w-]{{0,64}}|(?:{words}))"
            rf"([\"']?\s*[=:]\s*){_VALUE}"
        )

    def sensitive_key(self, key: str) -> bool:
        normalised = _normalise(key)
        return normalised in self.exact or any(needle in normalised for needle in self.needles)

    def text(self, value: str) -> str:
        value = _USERINFO.sub(lambda m: f"{m.group(1)}{FILTERED}@", value)
        value = self._pairs.sub(
            lambda m: f"{m.group(1)}{m.group(2)}{_filtered_value(m.group(3))}", value
        )
        value = _FORM_FIELD.sub(
            lambda m: m.group(1) + FILTERED if self.sensitive_key(m.group(2)) else m.group(0),
            value,
        )
        value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)
        uuids = [found.span() for found in _UUID.finditer(value)]

        def card(match: re.Match[str]) -> str:
            if any(start < match.end() and match.start() < end for start, end in uuids):
                return match.group(0)  # a UUID whose digits happen to pass Luhn
            digits = re.sub(r"\D", "", match.group(0))
            return FILTERED if _luhn_ok(digits) else match.group(0)

        return _CARD.sub(card, value)

    def scrub(self, value: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            return FILTERED
        if isinstance(value, dict):
            return {
                str(key): FILTERED if self.sensitive_key(str(key)) else self.scrub(item, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple | set):
            return [self.scrub(item, depth + 1) for item in value]
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.text(str(value))


@functools.cache
def _scrubber_for(denylist: tuple[str, ...], exact: tuple[str, ...]) -> Scrubber:
    return Scrubber(denylist, exact)


def default_scrubber() -> Scrubber:
    """The scrubber for ERROR_SCRUB_KEYS and ERROR_SCRUB_EXACT_KEYS (compiled once per list)."""
    return _scrubber_for(tuple(settings.ERROR_SCRUB_KEYS), tuple(settings.ERROR_SCRUB_EXACT_KEYS))
