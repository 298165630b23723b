"""TradingSession.name: what people call a run. Existing backtests get the name a new one gets
(runtimes/backtests.py default_name: strategy and version, or the dataset, then the range)."""

from django.db import migrations, models
from django.db.models import Max, Min

NAME_MAX_LENGTH = 120


def name_existing_backtests(apps, schema_editor):
    Session = apps.get_model("runtimes", "TradingSession")
    DatasetFile = apps.get_model("strategies", "DatasetFile")
    sessions = (Session.objects.filter(name="", dataset__isnull=False)
                .select_related("dataset", "strategy_version__strategy"))
    for session in sessions.iterator(chunk_size=500):
        start, end = session.start, session.end
        if start is None or end is None:
            bounds = DatasetFile.objects.filter(
                dataset_id=session.dataset_id, symbol__in=session.symbols).aggregate(
                first=Min("first_timestamp"), last=Max("last_timestamp"))
            start, end = start or bounds["first"], end or bounds["last"]
        period = " → ".join(f"{m:%Y-%m-%d}" for m in (start, end) if m is not None)
        version = session.strategy_version
        suffix = f" v{version.number}" if version is not None else ""
        what = version.strategy.name if version is not None else session.dataset.name
        room = NAME_MAX_LENGTH - len(suffix) - len(period) - 3
        head = (what if len(what) <= room else what[:room - 1] + "…") + suffix
        Session.objects.filter(pk=session.pk).update(
            name=f"{head} · {period}" if period else head)


class Migration(migrations.Migration):

    dependencies = [
        ("runtimes", "0013_broker_connections"),
        ("strategies", "0004_backtest_schedules_moved_to_runtimes"),
    ]

    operations = [
        migrations.AddField(
            model_name="tradingsession",
            name="name",
            field=models.CharField(blank=True, max_length=120),
        ),
        migrations.RunPython(name_existing_backtests, migrations.RunPython.noop),
    ]
