"""The JSON parser of both APIs: DRF's, with a bound on nesting (runtimes/core/json_limits.py);
and the decoder of the dashboard's JSON form fields, which turns the same into a field error.

Without it a body of 100,000 nested arrays raised RecursionError inside the parser, which DRF
does not catch: a 500 (Django's HTML debug page with DEBUG on) instead of a 400.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from runtimes.core.json_limits import MAX_JSON_DEPTH, nested_deeper_than


class JSONParser(parsers.JSONParser):
    """A body nested deeper than MAX_JSON_DEPTH is a ParseError: 400 INVALID_REQUEST."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        too_deep = ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if nested_deeper_than(data):
            raise too_deep
        return data


class JSONDecoder(json.JSONDecoder):
    """json's decoder, for form fields (`forms.JSONField(decoder=...)`, `json.loads(cls=...)`):
    JSON nested deeper than MAX_JSON_DEPTH is a JSONDecodeError, which forms show as invalid."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        too_deep = json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", s, 0)
        try:
            value = super().decode(s, *args, **kwargs)
        except RecursionError:
            raise too_deep from None
        if nested_deeper_than(value):
            raise too_deep
        return value
