"""`python -m config.web <daphne arguments>`: daphne's command line, on the event loop that
config/asgi_server.py prepares (importing `config` does that; daphne's CLI imports
`daphne.server`, which makes the loop, so it is imported after). Unless PLATFORM_INTERNAL_URL is
set, this process's hosted runs reach the platform at the address it serves."""

import os
import sys

import config  # noqa: F401  (prepares daphne's loop)


def follow_served_address(argv: list[str]) -> None:
    """Set PLATFORM_INTERNAL_URL (before settings load) from daphne's --bind/--port, unless it
    is set or daphne listens on a unix socket, a descriptor or an endpoint string."""
    from daphne.cli import CommandLineInterface

    from runtimes.instance import served_url

    args, _ = CommandLineInterface().parser.parse_known_args(argv)
    if args.unix_socket or args.file_descriptor is not None or args.socket_strings:
        return
    url = served_url(args.host or "127.0.0.1", args.port or 8000)
    os.environ["PLATFORM_INTERNAL_URL"] = os.environ.get("PLATFORM_INTERNAL_URL") or url


if __name__ == "__main__":
    import daphne.cli
    from daphne.cli import CommandLineInterface

    from config.logging import RedactingAccessLog

    daphne.cli.AccessLogGenerator = RedactingAccessLog  # the access log names no credential
    sys.argv[0] = "daphne"
    follow_served_address(sys.argv[1:])
    CommandLineInterface.entrypoint()
