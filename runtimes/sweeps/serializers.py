"""Serializers of the sweeps' management API: the create body (a backtest's fields, `from`/`to`
on the wire, plus the parameter space, the ranking metric and the walk-forward split)."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from config.decimal_fields import DecimalField
from runtimes.api_views import BacktestRunSerializer
from runtimes.sweeps.results import METRICS
from runtimes.sweeps.space import GRID, RANDOM


class SweepCreateSerializer(BacktestRunSerializer):
    timeframe = None  # a sweep's points run on the dataset's own timeframe
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    version = serializers.UUIDField(help_text="The strategy version whose parameters are swept.")
    mode = serializers.ChoiceField(choices=[GRID, RANDOM], default=GRID)
    parameters = serializers.JSONField(
        help_text="name -> a list of values, or a range: {start, stop, step} (grid, stop "
                  "included) or {min, max} (random; integers when both are).")
    fixed = serializers.JSONField(required=False, help_text="name -> the value every point gets.")
    samples = serializers.IntegerField(required=False, help_text="Points of a random sweep.")
    seed = serializers.IntegerField(required=False, help_text="Of a random sweep (default 0).")
    metric = serializers.ChoiceField(choices=list(METRICS), default="sharpe",
                                     help_text="What 'best' means (max_drawdown: lowest).")
    split_fraction = DecimalField(max_digits=4, decimal_places=3, required=False,
                                  min_value=Decimal("0.05"), max_value=Decimal("0.95"),
                                  help_text="Walk-forward: the in-sample share of the range.")
    split_at = serializers.DateTimeField(required=False,
                                         help_text="Walk-forward: where out-of-sample starts.")
    oos_top = serializers.IntegerField(required=False, default=3, min_value=1, max_value=10,
                                       help_text="Walk-forward: best in-sample points run "
                                                 "out of sample.")
