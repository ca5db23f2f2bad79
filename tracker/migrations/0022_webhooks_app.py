# Webhooks now belong to the webhooks app (its 0001 moves them, tables and
# permissions kept): here they only leave the tracker's model state.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('tracker', '0021_webhookdelivery_notify'),
        ('webhooks', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.RemoveField(model_name='webhookdelivery', name='webhook'),
            migrations.DeleteModel(name='Webhook'),
            migrations.DeleteModel(name='WebhookDelivery'),
        ]),
    ]
