"""The Django project package (named config/, not platform/, which would shadow the stdlib).

Importing it (as anything importing `config.settings` does, before Django loads its apps) also
makes daphne's event loop: the `daphne` app imports `daphne.server` while apps load, and that
import fixes the loop (see config/asgi_server.py).
"""

from config.asgi_server import prepare_daphne

prepare_daphne()

from config.celery import app as celery_app  # noqa: E402

__version__ = "0.1.0"
__all__ = ["__version__", "celery_app"]
