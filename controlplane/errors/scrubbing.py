"""Remove secrets before anything is stored.

Keys are matched after lower-casing and dropping everything but letters and
digits, so ``api_key``, ``X-Api-Key`` and ``apiKey`` all match ``apikey``.
Strings are also cleaned of bearer tokens, ``secret=value`` pairs (the name
with any separator: ``X-Api-Key: value``), passwords in URLs
(``scheme://user:password@host``) and card-like numbers (13-19 digits passing
the Luhn check).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings

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
)
_MAX_DEPTH = 20

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# The password in a URL's user info: postgresql://app:<password>@db:5432/app
# (Bounded repeats: unbounded, a long "a-a-a-..." word made this quadratic.)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://[^\s/?#@:]{0,256}:)([^\s/?#@]{1,1024})@")


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


class Scrubber:
    def __init__(self, denylist: Iterable[str] = DEFAULT_DENYLIST) -> None:
        self.needles = tuple(sorted({_normalise(item) for item in denylist if _normalise(item)}))
        names = "|".join(pattern for item in denylist if (pattern := _in_text(item))) or "(?!)"
        # key=value / key: value inside free text (query strings, log lines, headers)
        # ...also quoted, as in JSON or repr text: "client_secret": "value"
        # A match starts only where a word starts, and a key is at most ~160 characters:
        # unanchored and unbounded, [\w-]* would backtrack over every long word, which
        # makes scrubbing quadratic in the word's length (seconds for one 10 KB word).
        self._pairs = re.compile(
            rf"(?i)(?<![\w-])([\w-]{{0,64}}(?:{names})[\w-]{{0,64}})([\"']?\s*[=:]\s*[\"']?)"
            rf"((?:(?:bearer|basic|token)\s+)?[^\s&,;\"']+)"
        )

    def sensitive_key(self, key: str) -> bool:
        normalised = _normalise(key)
        return any(needle in normalised for needle in self.needles)

    def text(self, value: str) -> str:
        value = _USERINFO.sub(lambda m: f"{m.group(1)}{FILTERED}@", value)
        value = self._pairs.sub(lambda m: f"{m.group(1)}{m.group(2)}{FILTERED}", value)
        value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)

        def card(match: re.Match[str]) -> str:
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
def _scrubber_for(denylist: tuple[str, ...]) -> Scrubber:
    return Scrubber(denylist)


def default_scrubber() -> Scrubber:
    """The scrubber for the ERROR_SCRUB_KEYS setting (compiled once per denylist)."""
    return _scrubber_for(tuple(settings.ERROR_SCRUB_KEYS))
