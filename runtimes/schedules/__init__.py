"""Backtest schedules: a strategy version backtested on a cadence by Celery beat (models, the
service that keeps each schedule and its beat entry in step and starts runs, the beat task, the
dashboard pages and the management API)."""
