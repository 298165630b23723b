"""The Django project package (named config/, not platform/, which would shadow the stdlib)."""

from config.celery import app as celery_app

__version__ = "0.1.0"
__all__ = ["__version__", "celery_app"]
