"""The `mock` platform: a simulated market that is always open, for demos, first tries and CI.

`build` is the platform's provider factory (runtimes/core/platforms.py maps "mock" to it);
`validate_options` checks a session's options for the management API.
"""

from runtimes.providers.mock.options import MockConfig, parse_options, validate_options
from runtimes.providers.mock.provider import MockMarket, build

__all__ = ["MockConfig", "MockMarket", "build", "parse_options", "validate_options"]
