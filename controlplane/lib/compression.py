"""GZip for JSON answers: Django's GZipMiddleware, limited to JSON of GZIP_MIN_BYTES or more.

Only JSON (``application/json`` and ``application/*+json``, such as the OpenAPI document):
HTML pages carry CSRF tokens, and compressing secrets next to text an attacker can inject
is what BREACH exploits; ``/metrics`` (text) and anything already encoded are left alone.
A streaming JSON answer is compressed chunk by chunk (Django flushes after each chunk, so it
still streams). Small answers are not worth the CPU or the bytes of the gzip header.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware


def is_json(response: HttpResponseBase) -> bool:
    media_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class JsonGZipMiddleware(GZipMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not is_json(response):
            return response
        if not response.streaming and len(response.content) < settings.GZIP_MIN_BYTES:
            return response
        return super().process_response(request, response)
