"""Forms of the strategies pages: strategy uploads (a new strategy or its next version), the
choice of two versions to compare, and dataset uploads. They check the shape of the input;
`strategies.services` checks the contents."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

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


class VersionDiffForm(forms.Form):
    """Two different versions of one strategy by number (`?from=1&to=2`), of `numbers` (newest
    first); unbound, it proposes the last two."""

    def __init__(self, data: Any = None, *, numbers: list[int]) -> None:
        initial = {"to": numbers[0], "from": numbers[1]} if len(numbers) > 1 else {}
        super().__init__(data, initial=initial)
        choices = [(n, f"v{n}") for n in numbers]
        self.fields["from"] = forms.TypedChoiceField(label="From", coerce=int, choices=choices)
        self.fields["to"] = forms.TypedChoiceField(label="To", coerce=int, choices=choices)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("from") is not None and cleaned.get("from") == cleaned.get("to"):
            raise forms.ValidationError("Choose two different versions.")
        return cleaned


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
