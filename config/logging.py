"""A logging filter that scrubs credential-looking strings before any record is written."""

from __future__ import annotations

import logging
import re
from typing import Any

from daphne.access import AccessLogGenerator

# API keys, session tokens and share links of ours (a share link sits in a URL's path, so the
# access log line of each request holds one), bearer tokens, and key=value pairs whose key names
# a secret.
_PATTERNS = [
    re.compile(r"\b(prt|pst|psl)_[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:api[_-]?key|secret|password|token|pepper)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&]+"
    ),
]
REDACTED = "***REDACTED***"


def redact(text: str) -> str:
    text = _PATTERNS[0].sub(REDACTED, text)
    text = _PATTERNS[1].sub(lambda m: m.group(1) + REDACTED, text)
    return _PATTERNS[2].sub(lambda m: m.group(1) + REDACTED, text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingAccessLog(AccessLogGenerator):  # type: ignore[misc]
    """daphne's access log (`python -m config.web`, on at verbosity 1), with each line's request
    scrubbed like any log record: a share link's URL carries its credential in the path."""

    def write_entry(self, host: Any, date: Any, request: str, *args: Any, **kwargs: Any) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)
