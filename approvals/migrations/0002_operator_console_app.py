# The operator audit log now belongs to the ops app (its 0001 moves it, table
# and permissions kept): here it only leaves the approvals app's model state.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0001_initial'),
        ('ops', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name='OperatorAction'),
        ]),
    ]
