# Webhooks move from the tracker app into their own app. The tables stay as
# they are (tracker_webhook, tracker_webhookdelivery): this migration only
# tells Django the models now belong here, and relabels their content types,
# so the permissions users and groups hold on them (add/change/delete/view
# webhook...) move with them. tracker 0022 removes them from the tracker.

import django.db.models.deletion
from django.db import migrations, models


MODELS = ["webhook", "webhookdelivery"]


def relabel_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="tracker", model__in=MODELS).update(app_label="webhooks")


def unrelabel_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="webhooks", model__in=MODELS).update(app_label="tracker")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("tracker", "0021_webhookdelivery_notify"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(relabel_content_types, unrelabel_content_types),
        migrations.SeparateDatabaseAndState(state_operations=[
        migrations.CreateModel(
            name='Webhook',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(max_length=500)),
                ('events', models.JSONField(blank=True, default=list, help_text='e.g. ["WORKFLOW_SUCCEEDED", "TASK_FAILED"]')),
                ('secret', models.CharField(blank=True, default='', help_text='Signs the body (HMAC-SHA256).', max_length=200)),
                ('active', models.BooleanField(default=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'db_table': 'tracker_webhook',
            },
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.CharField(blank=True, help_text='params.notify: where it goes', max_length=2000, null=True)),
                ('headers', models.JSONField(blank=True, help_text="params.notify: the publisher's headers", null=True)),
                ('event', models.CharField(db_index=True, max_length=40)),
                ('execution_id', models.CharField(blank=True, db_index=True, max_length=36, null=True)),
                ('payload', models.JSONField()),
                ('state', models.CharField(choices=[('PENDING', 'PENDING'), ('DELIVERED', 'DELIVERED'), ('FAILED', 'FAILED')], db_index=True, default='PENDING', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(db_index=True)),
                ('last_status', models.PositiveIntegerField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True, null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('webhook', models.ForeignKey(blank=True, help_text="Empty for an execution's own params.notify publisher (url, headers).", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='webhooks.webhook')),
            ],
            options={
                'verbose_name_plural': 'webhook deliveries',
                'db_table': 'tracker_webhookdelivery',
                'ordering': ['-created_at'],
            },
        ),
            ]),
    ]
