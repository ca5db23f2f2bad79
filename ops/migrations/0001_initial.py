# The operator console moves from the approvals app into its own app. The
# table stays (approvals_operatoraction): this migration only tells Django the
# model now belongs here, and relabels its content type, so the console's
# permissions that users and groups hold (approvals.operate_executions, ...)
# become ops.operate_executions, ... with every grant kept. approvals 0002
# removes the model from the approvals app.

from django.db import migrations, models


def relabel_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="approvals", model="operatoraction").update(app_label="ops")


def unrelabel_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="ops", model="operatoraction").update(app_label="approvals")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("approvals", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(relabel_content_types, unrelabel_content_types),
        migrations.SeparateDatabaseAndState(state_operations=[
        migrations.CreateModel(
            name='OperatorAction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('username', models.CharField(max_length=150)),
                ('kind', models.CharField(choices=[('pause', 'Pause'), ('resume', 'Resume'), ('cancel', 'Cancel'), ('rerun_task', 'rerun task'), ('skip_task', 'skip task'), ('complete_action', 'complete action'), ('track', 'start tracking'), ('untrack', 'stop tracking')], max_length=20)),
                ('execution_id', models.CharField(blank=True, db_index=True, max_length=36, null=True)),
                ('target_id', models.CharField(blank=True, default='', help_text='Task or action execution id.', max_length=36)),
                ('target_name', models.CharField(blank=True, default='', max_length=255)),
                ('payload', models.JSONField(blank=True, default=dict)),
                ('summary', models.TextField()),
            ],
            options={
                'db_table': 'approvals_operatoraction',
                'ordering': ['-at', '-id'],
                'permissions': [('operate_executions', 'Can pause, resume and cancel executions'), ('fix_tasks', 'Can rerun and skip failed tasks'), ('complete_actions', 'Can complete action executions by hand'), ('manage_tracking', 'Can start and stop tracking actions')],
                'default_permissions': ('view',),
            },
        ),
            ]),
    ]
