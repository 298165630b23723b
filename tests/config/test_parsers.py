"""JSON nested too deeply is a clear refusal in the dashboard's JSON form fields too (the APIs'
parser is tested over the real server in test_server_limits.py)."""

from __future__ import annotations

from django import forms

from config.parsers import JSONDecoder

NESTED = "[" * 100_000 + "]" * 100_000


class ParamsForm(forms.Form):
    params = forms.JSONField(decoder=JSONDecoder)


def test_a_json_form_field_refuses_deep_nesting_as_invalid_json():
    assert ParamsForm(data={"params": NESTED}).errors == {"params": ["Enter a valid JSON."]}
    assert ParamsForm(data={"params": "[" * 33 + "]" * 33}).errors == {
        "params": ["Enter a valid JSON."]
    }
    assert ParamsForm(data={"params": '{"fast": [10]}'}).is_valid()


def test_the_backtest_forms_parameters_say_why_they_are_refused():
    from runtimes.forms import HostedBacktestForm
    from strategies.models import Dataset

    form = HostedBacktestForm(data={"params": NESTED}, datasets=Dataset.objects.none())
    assert form.errors["params"] == ["Not valid JSON: nested deeper than 32 levels."]
