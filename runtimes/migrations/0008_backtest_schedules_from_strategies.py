# Backtest schedules arrive from the strategies app (strategies 0004 let them go): Django's idea
# of the models only, over the tables strategies 0003 created, which keep their names (no data
# moves). Then the rows that name the old app follow: the content types (so permissions and
# admin history stay attached) and the beat entries' task, now registered as runtimes.run_schedule.

import django.db.models.deletion
import django.utils.timezone
import uuid
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

OLD_TASK, NEW_TASK = 'strategies.run_schedule', 'runtimes.run_schedule'
MODELS = ('backtestschedule', 'schedulerun')


def _move(apps, *, from_app, to_app, from_task, to_task):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    ContentType.objects.filter(app_label=from_app, model__in=MODELS).update(app_label=to_app)
    PeriodicTask = apps.get_model('django_celery_beat', 'PeriodicTask')
    moved = 0
    for task in PeriodicTask.objects.filter(task=from_task):
        task.task = to_task
        task.name = to_task + task.name.removeprefix(from_task)  # "<task>:<schedule id>"
        task.save(update_fields=['task', 'name'])
        moved += 1
    if moved:  # beat reloads its entries when this marker changes (no signal runs in migrations)
        PeriodicTasks = apps.get_model('django_celery_beat', 'PeriodicTasks')
        PeriodicTasks.objects.update_or_create(
            ident=1, defaults={'last_update': django.utils.timezone.now()})


def forwards(apps, schema_editor):
    _move(apps, from_app='strategies', to_app='runtimes', from_task=OLD_TASK, to_task=NEW_TASK)


def backwards(apps, schema_editor):
    _move(apps, from_app='runtimes', to_app='strategies', from_task=NEW_TASK, to_task=OLD_TASK)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
        ('runtimes', '0007_session_leases'),
        ('strategies', '0004_backtest_schedules_moved_to_runtimes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='BacktestSchedule',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('name', models.CharField(max_length=100)),
                        ('symbols', models.JSONField(blank=True, default=list, help_text='empty: every symbol')),
                        ('timeframe', models.CharField(blank=True, help_text="empty: the dataset's", max_length=8)),
                        ('initial_cash', models.DecimalField(decimal_places=8, default=Decimal('100000'), max_digits=24)),
                        ('commission', models.JSONField(blank=True, default=dict)),
                        ('slippage_bps', models.DecimalField(decimal_places=4, default=Decimal('0'), max_digits=12)),
                        ('params', models.JSONField(blank=True, default=dict)),
                        ('rolling_days', models.PositiveIntegerField(blank=True, null=True)),
                        ('start', models.DateTimeField(blank=True, null=True)),
                        ('end', models.DateTimeField(blank=True, null=True)),
                        ('cron_expression', models.CharField(blank=True, max_length=200)),
                        ('interval_minutes', models.PositiveIntegerField(blank=True, null=True)),
                        ('timezone', models.CharField(default='UTC', editable=False, max_length=63)),
                        ('paused', models.BooleanField(default=False)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('dataset', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='schedules', to='strategies.dataset')),
                        ('periodic_task', models.OneToOneField(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='backtest_schedule', to='django_celery_beat.periodictask')),
                        ('version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='schedules', to='strategies.strategyversion')),
                        ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='backtest_schedules', to='accounts.workspace')),
                    ],
                    options={
                        'db_table': 'strategies_backtestschedule',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='ScheduleRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('started_at', models.DateTimeField()),
                        ('status', models.CharField(choices=[('started', 'Started'), ('failed', 'Failed')], max_length=10)),
                        ('error', models.TextField(blank=True)),
                        ('window_start', models.DateTimeField(blank=True, null=True)),
                        ('window_end', models.DateTimeField(blank=True, null=True)),
                        ('schedule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='runtimes.backtestschedule')),
                        ('session', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='runtimes.tradingsession')),
                    ],
                    options={
                        'db_table': 'strategies_schedulerun',
                        'ordering': ['-started_at', '-id'],
                    },
                ),
                migrations.AddConstraint(
                    model_name='backtestschedule',
                    constraint=models.UniqueConstraint(fields=('workspace', 'name'), name='schedule_name_unique'),
                ),
                migrations.AddConstraint(
                    model_name='backtestschedule',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('cron_expression', ''), ('interval_minutes__isnull', False)), models.Q(models.Q(('cron_expression', ''), _negated=True), ('interval_minutes__isnull', True)), _connector='OR'), name='schedule_one_cadence'),
                ),
                migrations.AddConstraint(
                    model_name='backtestschedule',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('end__isnull', True), ('rolling_days__isnull', False), ('start__isnull', True)), models.Q(('end__isnull', False), ('rolling_days__isnull', True), ('start__isnull', False)), _connector='OR'), name='schedule_one_window'),
                ),
                migrations.AddIndex(
                    model_name='schedulerun',
                    index=models.Index(fields=['schedule', '-started_at'], name='strategies__schedul_db21ee_idx'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
