"""The form of a new backtest schedule on the dashboard. It checks the shape of the input;
`runtimes.schedules.services` checks the settings together."""

from __future__ import annotations

from typing import Any

from django import forms

from config.decimal_fields import FormDecimalField
from config.parsers import JSONDecoder
from runtimes.schedules.services import (
    INTERVAL_TOO_LONG,
    INTERVAL_TOO_SHORT,
    MAX_INTERVAL_MINUTES,
    MAX_ROLLING_DAYS,
    MIN_INTERVAL_MINUTES,
)


class ScheduleForm(forms.Form):
    """A new backtest schedule: a version over a dataset, a cadence (cron or every N minutes)
    and a window (rolling or fixed). `schedules.services` checks the combination."""

    name = forms.CharField(max_length=100)
    version = forms.ModelChoiceField(queryset=None, label="Strategy version")
    dataset = forms.ModelChoiceField(queryset=None)
    symbols = forms.CharField(required=False, help_text="Comma-separated; empty: every symbol "
                                                        "of the dataset.")
    cadence = forms.ChoiceField(choices=[("cron", "Cron expression"), ("interval", "Interval")],
                                widget=forms.RadioSelect, initial="cron")
    cron_expression = forms.CharField(max_length=200, required=False, initial="0 6 * * 1-5",
                                      help_text="minute hour day-of-month month day-of-week, "
                                                "UTC. 0 6 * * 1-5: weekdays at 06:00.")
    # Bounded in clean(), only when the interval is the chosen cadence (both inputs are sent).
    interval_minutes = forms.IntegerField(required=False, initial=1440,
                                          help_text=f"At least {MIN_INTERVAL_MINUTES} minutes.")
    window = forms.ChoiceField(choices=[("rolling", "Rolling window"), ("fixed", "Fixed dates")],
                               widget=forms.RadioSelect, initial="rolling")
    rolling_days = forms.IntegerField(required=False, min_value=1, max_value=MAX_ROLLING_DAYS,
                                      initial=90,
                                      help_text="The last N days, ending at the dataset's "
                                                "last bar.")
    start = forms.DateTimeField(required=False, help_text="UTC",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(required=False, help_text="UTC",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    initial_cash = FormDecimalField(max_digits=24, decimal_places=8, initial=100_000)
    commission_percent = FormDecimalField(max_digits=12, decimal_places=6, required=False,
                                            min_value=0, label="Commission (%)")
    slippage_bps = FormDecimalField(max_digits=12, decimal_places=4, initial=0, min_value=0,
                                      label="Slippage (bps)")
    params = forms.JSONField(required=False, initial=dict, label="Parameters (JSON)",
                             decoder=JSONDecoder,
                             widget=forms.Textarea(attrs={"rows": 3}))

    # details.field of a service error -> the input it belongs to
    FIELD_OF = {"commission": "commission_percent", "timeframe": "dataset"}

    def __init__(self, *args: Any, versions: Any, datasets: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = versions
        self.fields["version"].label_from_instance = (
            lambda v: f"{v.strategy.name} v{v.number}")
        self.fields["dataset"].queryset = datasets

    def clean(self) -> dict[str, Any]:
        """The interval's bounds, in the service's words, beside the input at once."""
        data = super().clean()
        minutes = data.get("interval_minutes")
        if data.get("cadence") == "interval":
            if minutes is None and "interval_minutes" not in self.errors:
                self.add_error("interval_minutes", "Give the interval in minutes.")
            elif minutes is not None and minutes < MIN_INTERVAL_MINUTES:
                self.add_error("interval_minutes", INTERVAL_TOO_SHORT)
            elif minutes is not None and minutes > MAX_INTERVAL_MINUTES:
                self.add_error("interval_minutes", INTERVAL_TOO_LONG)
        return data

    def schedule_settings(self) -> dict[str, Any]:
        """The keyword arguments of schedules.services.create_schedule this form decides."""
        data = self.cleaned_data
        cron = data["cadence"] == "cron"
        rolling = data["window"] == "rolling"
        percent = data.get("commission_percent")
        return {
            "name": data["name"], "version": data["version"], "dataset": data["dataset"],
            "symbols": [s.strip() for s in data["symbols"].split(",") if s.strip()],
            "cron_expression": data["cron_expression"] if cron else "",
            "interval_minutes": None if cron else data["interval_minutes"],
            "rolling_days": data["rolling_days"] if rolling else None,
            "start": None if rolling else data["start"], "end": None if rolling else data["end"],
            "initial_cash": data["initial_cash"], "slippage_bps": data["slippage_bps"],
            "commission": {} if percent is None else {"percent": percent},
            "params": data["params"] or {},
        }

    def add_service_error(self, field: str | None, message: str) -> None:
        field = self.FIELD_OF.get(field or "", field)
        self.add_error(field if field in self.fields else None, message)
