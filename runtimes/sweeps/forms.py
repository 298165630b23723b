"""The dashboard's "Sweep parameters" form: a backtest's data, range, money and costs (as "Run a
backtest"), the parameter space as JSON, the metric that ranks points and an optional
walk-forward split. It checks shapes; `runtimes.sweeps.space` and the services check the rest."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from runtimes.forms import HostedBacktestForm, _json_object
from runtimes.sweeps.results import METRICS
from runtimes.sweeps.space import GRID, RANDOM

SPACE_HELP = ('Each swept parameter: a list of values, or a range. Grid: {"fast": [5, 10, 20], '
              '"slow": {"start": 20, "stop": 60, "step": 10}} (stop included). Random: '
              '{"fast": {"min": 5, "max": 30}} (integers when both ends are).')


class SweepForm(HostedBacktestForm):
    name = forms.CharField(max_length=100, required=False,
                           help_text="Empty: the strategy's name and version.")
    mode = forms.ChoiceField(choices=[(GRID, "Grid: every combination"),
                                      (RANDOM, "Random sample of points (seeded)")],
                             initial=GRID)
    parameters = forms.CharField(label="Parameters to sweep (JSON object)", help_text=SPACE_HELP,
                                 widget=forms.Textarea(attrs={"rows": 3}))
    fixed = forms.CharField(required=False, initial="{}", label="Fixed parameters (JSON object)",
                            widget=forms.Textarea(attrs={"rows": 2}),
                            help_text="Given to every point as they are.")
    samples = forms.IntegerField(required=False, min_value=1, help_text="Random: how many points.")
    seed = forms.IntegerField(required=False, min_value=0, initial=0,
                              help_text="Random: the same seed draws the same points.")
    metric = forms.ChoiceField(choices=list(METRICS.items()), initial="sharpe",
                               label="Rank points by")
    split_fraction = forms.DecimalField(required=False, min_value=Decimal("0.05"),
                                        max_value=Decimal("0.95"), decimal_places=3,
                                        label="Walk-forward: in-sample share (e.g. 0.7)",
                                        help_text="Empty: no walk-forward split.")
    oos_top = forms.IntegerField(min_value=1, max_value=10, initial=3,
                                 label="Best in-sample points run out of sample")
    field_order = ["name", "dataset", "symbols", "start", "end", "initial_cash",
                   "commission_percent", "slippage_bps", "mode", "parameters", "fixed",
                   "samples", "seed", "metric", "split_fraction", "oos_top"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["params"], self.fields["timeframe"]

    def clean_parameters(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["parameters"])

    def clean_fixed(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["fixed"])

    def sweep_fields(self) -> dict[str, Any]:
        """The fields `runtimes.sweeps.services.sweep_arguments` reads."""
        data = self.cleaned_data
        return {key: data[key] for key in (
            "name", "symbols", "start", "end", "initial_cash", "slippage_bps", "mode",
            "parameters", "fixed", "samples", "seed", "metric", "split_fraction", "oos_top")
        } | {"commission": self.commission()}
