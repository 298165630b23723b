"""The dashboard's forms of the runtimes app: "Run a backtest" (a strategy version on one of the
workspace's datasets), "New deployment" and "Add a broker connection". They check the shape of
the input; the services (`create_hosted_backtest`, `runtimes.deployments`,
`runtimes.credentials`) check the rest."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms

from accounts.models import BrokerCredential
from config.decimal_fields import FormDecimalField
from config.parsers import JSONDecoder
from runtimes.core.platforms import PLATFORMS
from runtimes.credentials import connectable_platforms
from runtimes.hosting.brokers import FAMILIES
from runtimes.hosting.risk import RiskLimits
from runtimes.models import NAME_MAX_LENGTH, TradingSession, deployable_platforms
from strategies.models import Dataset, StrategyVersion

LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The commission's parts (runtimes.core.costs.Commission), each a field `commission_<part>`.
COMMISSION_PARTS = ("percent", "per_share", "fixed", "minimum")


class HostedBacktestForm(forms.Form):
    name = forms.CharField(required=False, max_length=NAME_MAX_LENGTH,
                           help_text="Empty: the strategy, its version and the range.")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None)
    symbols = forms.CharField(required=False, help_text="Comma-separated; empty: every symbol "
                                                        "of the dataset.")
    timeframe = forms.CharField(required=False, max_length=8,
                                help_text="Empty: the dataset's own timeframe.")
    # The format a datetime-local input accepts as its value (a prefilled form keeps its range).
    start = forms.DateTimeField(required=False, label="From (UTC)", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local", "step": "1"}, format=LOCAL_INPUT_FORMAT))
    end = forms.DateTimeField(required=False, label="To (UTC)", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local", "step": "1"}, format=LOCAL_INPUT_FORMAT))
    initial_cash = FormDecimalField(min_value=Decimal(0), max_digits=24, decimal_places=8,
                                      initial=Decimal(100_000))
    commission_percent = FormDecimalField(min_value=Decimal(0), max_value=Decimal(100),
                                            max_digits=12, decimal_places=6, initial=Decimal(0),
                                            label="Commission (% of notional)")
    commission_per_share = FormDecimalField(required=False, min_value=Decimal(0),
                                            max_digits=12, decimal_places=6,
                                            label="Commission per unit")
    commission_fixed = FormDecimalField(required=False, min_value=Decimal(0), max_digits=16,
                                        decimal_places=6, label="Commission per fill")
    commission_minimum = FormDecimalField(required=False, min_value=Decimal(0), max_digits=16,
                                          decimal_places=6, label="Minimum commission per fill")
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
        return _json_object(self.cleaned_data["params"])

    def commission(self) -> dict[str, Decimal]:
        """The commission's parts given (non-zero), as runtimes.core.costs.Commission names
        them; shared with the sweep form, which inherits the fields."""
        data = self.cleaned_data
        return {part: data[f"commission_{part}"] for part in COMMISSION_PARTS
                if data.get(f"commission_{part}")}

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of create_hosted_backtest this form decides."""
        data = self.cleaned_data
        commission = self.commission()
        return {
            "dataset": data["dataset"], "symbols": data["symbols"],
            "timeframe": data["timeframe"] or None, "start": data["start"], "end": data["end"],
            "initial_cash": data["initial_cash"], "slippage_bps": data["slippage_bps"],
            "commission": commission, "params": data["params"],
        }

    @staticmethod
    def initial_from(session: TradingSession) -> dict[str, Any]:
        """Every input of `session` as this form's initial data ("Clone and edit")."""
        commission = session.commission or {}
        return {
            "dataset": session.dataset_id, "symbols": ", ".join(session.symbols),
            "timeframe": session.timeframe, "start": session.start, "end": session.end,
            "initial_cash": _plain(session.initial_cash),
            "slippage_bps": _plain(session.slippage_bps),
            "params": json.dumps(session.params or {}, indent=1),
            **{f"commission_{part}": _plain(commission.get(part) or 0)
               for part in COMMISSION_PARTS},
        }


def _plain(value: Any) -> Decimal:
    # A stored 100000.00000000 reads back as 100000 in the prefilled form.
    number = Decimal(str(value)).normalize()
    return number.quantize(Decimal(1)) if number == number.to_integral() else number


class DeploymentForm(forms.Form):
    """The dashboard's "New deployment" form: what to run, where, and its limits. A live
    platform needs its name typed again (`confirm_name`); the services check the rest."""

    name = forms.CharField(max_length=100)
    version = forms.ModelChoiceField(
        queryset=StrategyVersion.objects.none(), required=False, label="Strategy version",
        empty_label="Remote strategy (connects with an API key)")
    platform = forms.ChoiceField(choices=())
    connection = forms.ModelChoiceField(
        queryset=BrokerCredential.objects.none(), required=False, label="Broker connection",
        empty_label="None (mock needs none)",
        help_text="For a broker platform: one of this workspace's connections to it.")
    symbols = forms.CharField(max_length=2000, help_text="Comma-separated, e.g. AAPL, MSFT.")
    timeframes = forms.CharField(max_length=200, initial="1m",
                                 help_text="Comma-separated, e.g. 1m, 5m.")
    initial_cash = FormDecimalField(min_value=Decimal("0.01"), max_digits=24, decimal_places=8,
                                    initial=Decimal(100_000), label="Initial cash (mock)")
    params = forms.CharField(required=False, initial="{}", label="Parameters (JSON object)",
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Given to the strategy as PARITY_STRATEGY_PARAMS.")
    max_order_quantity = FormDecimalField(required=False, min_value=Decimal("0.000000000001"),
                                          max_digits=30, decimal_places=12)
    max_order_notional = FormDecimalField(required=False, min_value=Decimal("0.000000000001"),
                                          max_digits=30, decimal_places=12)
    max_position_quantity = FormDecimalField(required=False,
                                             min_value=Decimal("0.000000000001"),
                                             max_digits=30, decimal_places=12)
    max_open_orders = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    max_orders_per_minute = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    daily_loss_limit = FormDecimalField(required=False, min_value=Decimal("0.000000000001"),
                                        max_digits=30, decimal_places=12)
    start_now = forms.BooleanField(required=False, initial=True, label="Start it now")
    confirm_name = forms.CharField(
        required=False, max_length=100, label="Type the deployment's name to confirm",
        help_text="Only for a live platform: real money is at stake.")

    def __init__(self, *args: Any, versions: Any, connections: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = versions
        self.fields["version"].label_from_instance = (
            lambda v: f"{v.strategy.name} v{v.number}")
        self.fields["platform"].choices = deployable_platforms()
        self.fields["connection"].queryset = connections
        self.fields["connection"].label_from_instance = _connection_choice

    def clean_symbols(self) -> list[str]:
        symbols = [s.strip() for s in self.cleaned_data["symbols"].split(",") if s.strip()]
        if not symbols:
            raise forms.ValidationError("At least one symbol.")
        return symbols

    def clean_timeframes(self) -> list[str]:
        timeframes = [t.strip() for t in self.cleaned_data["timeframes"].split(",") if t.strip()]
        if not timeframes:
            raise forms.ValidationError("At least one timeframe.")
        return timeframes

    def clean_params(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["params"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        spec = PLATFORMS.get(data.get("platform") or "")
        name = (data.get("name") or "").strip()
        if spec is not None and spec.live and (data.get("confirm_name") or "").strip() != name:
            self.add_error("confirm_name", f"{spec.label} trades real money: type the "
                                           f"deployment's name, {name!r}, to confirm.")
        return data

    def risk_limits(self) -> RiskLimits:
        data = self.cleaned_data
        return RiskLimits(**{name: data.get(name) for name in (
            "max_order_quantity", "max_order_notional", "max_position_quantity",
            "max_open_orders", "max_orders_per_minute", "daily_loss_limit")})

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of create_deployment this form decides."""
        data = self.cleaned_data
        return {"name": data["name"], "platform": data["platform"], "version": data["version"],
                "connection": data["connection"],
                "symbols": data["symbols"], "timeframes": data["timeframes"],
                "params": data["params"], "initial_cash": data["initial_cash"],
                "risk_limits": self.risk_limits()}


def _connection_choice(credential: BrokerCredential) -> str:
    spec = PLATFORMS.get(credential.platform)
    live = " (live: real money)" if spec is not None and spec.live else ""
    return f"{credential.label}: {spec.label if spec else credential.platform}{live}, " \
           f"key {credential.shown_key}"


class _Unrendered(forms.TextInput):
    """A text input never filled back in: what was typed is not sent back with the page."""

    def format_value(self, value: Any) -> str | None:
        return None


class ConnectionForm(forms.Form):
    """"Add a broker connection": a label, the platform, the keys, and the broker family's
    options (runtimes/hosting/brokers.py FAMILIES gives their fields). The keys are never
    rendered back, not even after an error."""

    label = forms.CharField(max_length=100, help_text="How you will recognise it, e.g. "
                                                      "'Alpaca paper'.")
    platform = forms.ChoiceField(choices=())
    key_id = forms.CharField(max_length=256, label="API key id",
                             widget=_Unrendered(attrs={"autocomplete": "off"}))
    secret = forms.CharField(max_length=256, label="API secret key", strip=True,
                             help_text="Binance with an Ed25519 key: its PEM private key.",
                             widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["platform"].choices = [(p, _platform_label(p))
                                           for p in connectable_platforms()]
        for family in FAMILIES.values():
            for name, (allowed, default, label) in family.options.items():
                # Not required: only the chosen platform's family's fields matter, and a
                # family's field left out takes its default.
                self.fields[name] = forms.ChoiceField(
                    choices=[(value, value.upper()) for value in allowed], initial=default,
                    label=label, help_text=f"{family.label} only.", required=False)

    def options(self) -> dict[str, Any]:
        """The chosen options of the platform's family (a default for one left out)."""
        family = FAMILIES[PLATFORMS[self.cleaned_data["platform"]].broker]
        return {name: self.cleaned_data[name] or default
                for name, (_allowed, default, _label) in family.options.items()}


def _platform_label(platform_id: str) -> str:
    spec = PLATFORMS[platform_id]
    return f"{spec.label}: real money" if spec.live else spec.label


class ConfirmForm(forms.Form):
    """A deployment's start or resume on a live platform: its name typed again."""

    confirm_name = forms.CharField(required=False, max_length=100)


def _json_object(text: str) -> dict[str, Any]:
    text = text.strip() or "{}"
    try:
        value = json.loads(text, cls=JSONDecoder)
    except json.JSONDecodeError as error:
        raise forms.ValidationError(f"Not valid JSON: {error.msg}.") from None
    if not isinstance(value, dict):
        raise forms.ValidationError("Must be a JSON object, like {\"fast\": 10}.")
    return value
