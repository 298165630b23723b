"""`python -m config.web <daphne arguments>`: daphne's command line, on the event loop that
config/asgi_server.py prepares (importing `config` does that; daphne's CLI imports
`daphne.server`, which makes the loop, so it is imported after)."""

import sys

import config  # noqa: F401  (prepares daphne's loop)

if __name__ == "__main__":
    from daphne.cli import CommandLineInterface

    sys.argv[0] = "daphne"
    CommandLineInterface.entrypoint()
