"""The parsers of both APIs: DRF's, with a bound on JSON nesting (runtimes/core/json_limits.py)
and Django's own upload limits answered as envelopes; and the decoder of the dashboard's JSON
form fields, which turns too deep nesting into a field error.

Without it a body of 100,000 nested arrays raised RecursionError inside the parser, which DRF
does not catch: a 500 (Django's HTML debug page with DEBUG on) instead of a 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from config.errors import ApiError
from runtimes.core.json_limits import MAX_JSON_DEPTH, nested_deeper_than


class JSONParser(parsers.JSONParser):
    """A body nested deeper than MAX_JSON_DEPTH is a ParseError: 400 INVALID_REQUEST."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = nested_deeper_than(data)
        if too_deep:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
        return data


@contextmanager
def django_limits_as_envelopes() -> Iterator[None]:
    """Django's limits on form data (DATA_UPLOAD_MAX_MEMORY_SIZE for what is not a file, so many
    fields, so many files) raise SuspiciousOperations that DRF leaves to Django: an HTML 400."""
    try:
        yield
    except RequestDataTooBig:
        raise ApiError(
            "PAYLOAD_TOO_LARGE",
            "The form fields that are not files are too large.",
            status_code=413,
            details={"limit_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
        ) from None
    except TooManyFieldsSent:
        raise ApiError(
            "INVALID_REQUEST",
            "The form has too many fields.",
            details={"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS},
        ) from None
    except TooManyFilesSent:
        raise ApiError(
            "INVALID_REQUEST",
            "The form has too many files.",
            details={"limit": settings.DATA_UPLOAD_MAX_NUMBER_FILES},
        ) from None


class FormParser(parsers.FormParser):
    """DRF's, with Django's limits answered as envelopes."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        with django_limits_as_envelopes():
            return super().parse(stream, media_type, parser_context)


class MultiPartParser(parsers.MultiPartParser):
    """DRF's, with Django's limits answered as envelopes."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        with django_limits_as_envelopes():
            return super().parse(stream, media_type, parser_context)


class JSONDecoder(json.JSONDecoder):
    """json's decoder, for form fields (`forms.JSONField(decoder=...)`, `json.loads(cls=...)`):
    JSON nested deeper than MAX_JSON_DEPTH is a JSONDecodeError, which forms show as invalid."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            value = super().decode(s, *args, **kwargs)
        except RecursionError:
            value = None
            too_deep = True
        else:
            too_deep = nested_deeper_than(value)
        if too_deep:
            raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", s, 0)
        return value
