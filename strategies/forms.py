"""Forms of the strategies pages: strategy uploads (a new strategy or its next version) and
dataset uploads. They check the shape of the input; `strategies.services` checks the contents."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from config.decimal_fields import FormDecimalField
from config.parsers import JSONDecoder

MAX_STRATEGY_UPLOAD_BYTES = 5 * 1024 * 1024


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field taking several files at once (Django's documented recipe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class StrategyUploadForm(forms.Form):
    """`name` only for a new strategy; an upload to an existing strategy drops the field."""

    name = forms.CharField(max_length=100, help_text="Uploading again under the same name adds "
                                                      "a new version to that strategy.")
    note = forms.CharField(max_length=500, required=False, label="Version note (optional)",
                           widget=forms.TextInput(attrs={"placeholder": "What changed?"}))
    file = forms.FileField(label="Strategy file", help_text="A .py file, or a .zip with main.py "
                                                            "or strategy.py at its root.")

    def __init__(self, *args: Any, new_strategy: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not new_strategy:
            del self.fields["name"]

    def clean_file(self) -> UploadedFile:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_STRATEGY_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 5 MB.")
        return upload

    def initial_name(self) -> str:
        """The name to suggest when the person left it empty: the file name without .py."""
        upload = self.files.get("file")
        return PurePosixPath(upload.name).stem if upload else ""


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=100)
    timeframe = forms.CharField(max_length=8, required=False, label="Timeframe (optional)",
                                help_text="e.g. 1m, 1h, 1d; left empty, it is read from the "
                                          "files.")
    files = MultipleFileField(label="Bar files", help_text="CSV, JSON or Parquet, one file per "
                                                           "symbol: AAPL.csv holds AAPL.")

    def files_by_symbol(self) -> dict[str, tuple[str, bytes]]:
        """`{symbol: (filename, bytes)}`; the symbol is the file name up to its first dot."""
        files: dict[str, tuple[str, bytes]] = {}
        for upload in self.cleaned_data["files"]:
            name = PurePosixPath(upload.name or "file").name
            files[name.split(".", 1)[0]] = (name, upload.read())
        return files

    def clean_files(self) -> list[UploadedFile]:
        uploads = self.cleaned_data["files"]
        symbols = [PurePosixPath(u.name or "").name.split(".", 1)[0] for u in uploads]
        repeated = sorted({s for s in symbols if symbols.count(s) > 1})
        if repeated:
            raise forms.ValidationError(f"More than one file for {', '.join(repeated)}; send "
                                        "one file per symbol.")
        return uploads


class ScheduleForm(forms.Form):
    """A new backtest schedule: a version over a dataset, a cadence (cron or every N minutes)
    and a window (rolling or fixed). `strategies.schedules` checks the combination."""

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
    interval_minutes = forms.IntegerField(required=False, min_value=1, initial=1440,
                                          help_text="At least 5 minutes.")
    window = forms.ChoiceField(choices=[("rolling", "Rolling window"), ("fixed", "Fixed dates")],
                               widget=forms.RadioSelect, initial="rolling")
    rolling_days = forms.IntegerField(required=False, min_value=1, initial=90,
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

    def schedule_settings(self) -> dict[str, Any]:
        """The keyword arguments of strategies.schedules.create_schedule this form decides."""
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
