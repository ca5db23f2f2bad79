"""``manage.py ensure_admin``: a superuser for the Django admin on a fresh install."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the superuser GUST_ADMIN_USER (default admin) if no superuser exists, with the password "
        "GUST_ADMIN_PASSWORD or a random one printed once."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        name = os.environ.get("GUST_ADMIN_USER", "admin")
        chosen = os.environ.get("GUST_ADMIN_PASSWORD", "")
        password = chosen or secrets.token_urlsafe(15)
        User.objects.create_superuser(name, f"{name}@localhost", password)
        if chosen:
            self.stdout.write(f"created superuser '{name}' with the password in GUST_ADMIN_PASSWORD")
        else:
            self.stdout.write(
                f"created superuser '{name}' with password '{password}' "
                f"(shown only now; `manage.py changepassword {name}` to change it)"
            )
