# Backtest schedules move to the runtimes app (runtimes/schedules/models.py): a run is a session,
# and runtimes depends on strategies, never the reverse. Only Django's idea of the models moves
# here; the tables stay as they are (runtimes migration 0008 takes them over by name).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('strategies', '0003_backtest_schedules'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='ScheduleRun'),
                migrations.DeleteModel(name='BacktestSchedule'),
            ],
            database_operations=[],
        ),
    ]
