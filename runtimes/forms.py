"""The dashboard's "Run a backtest" form: a strategy version on one of the workspace's datasets.
It checks the shape of the input; `runtimes.services.create_hosted_backtest` checks the rest."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms

from config.decimal_fields import FormDecimalField
from config.parsers import JSONDecoder
from strategies.models import Dataset


class HostedBacktestForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None)
    symbols = forms.CharField(required=False, help_text="Comma-separated; empty: every symbol "
                                                        "of the dataset.")
    timeframe = forms.CharField(required=False, max_length=8,
                                help_text="Empty: the dataset's own timeframe.")
    start = forms.DateTimeField(required=False, label="From (UTC)",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(required=False, label="To (UTC)",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    initial_cash = FormDecimalField(min_value=Decimal(0), max_digits=24, decimal_places=8,
                                      initial=Decimal(100_000))
    commission_percent = FormDecimalField(min_value=Decimal(0), max_value=Decimal(100),
                                            max_digits=12, decimal_places=6, initial=Decimal(0),
                                            label="Commission (% of notional)")
    slippage_bps = FormDecimalField(min_value=Decimal(0), max_digits=12, decimal_places=4,
                                      initial=Decimal(0), label="Slippage (basis points)")
    params = forms.CharField(required=False, initial="{}", label="Parameters (JSON object)",
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Given to the strategy as PARITY_STRATEGY_PARAMS.")

    def __init__(self, *args: Any, datasets: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets

    def clean_symbols(self) -> list[str] | None:
        symbols = [s.strip() for s in self.cleaned_data["symbols"].split(",") if s.strip()]
        return symbols or None

    def clean_params(self) -> dict[str, Any]:
        text = self.cleaned_data["params"].strip() or "{}"
        try:
            params = json.loads(text, cls=JSONDecoder)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON: {error.msg}.") from None
        if not isinstance(params, dict):
            raise forms.ValidationError("Must be a JSON object, like {\"fast\": 10}.")
        return params

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of create_hosted_backtest this form decides."""
        data = self.cleaned_data
        percent = data["commission_percent"]
        return {
            "dataset": data["dataset"], "symbols": data["symbols"],
            "timeframe": data["timeframe"] or None, "start": data["start"], "end": data["end"],
            "initial_cash": data["initial_cash"], "slippage_bps": data["slippage_bps"],
            "commission": {"percent": percent} if percent else {}, "params": data["params"],
        }
