"""gunicorn settings, read from the working directory by every `gunicorn` started here.

gunicorn answers a request line longer than `limit_request_line` itself, with an
HTML 414 that never reaches Django (so no error envelope, no support_id). The
default, 4,094 bytes, is less than a schema-valid /api/v1/errors/ query whose
filters hold non-ASCII text (each character percent-encodes to up to 12 bytes);
the fuzz drill sent one. 8,190 is gunicorn's maximum. Put the same or a lower
limit on the proxy in front, so the proxy refuses first.
"""

limit_request_line = 8190
