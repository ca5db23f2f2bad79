"""``manage.py ensure_admin``: a superuser for the Django admin on a fresh install."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser GUST_ADMIN_USER (default admin) if no superuser exists."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        name = os.environ.get("GUST_ADMIN_USER", "admin")
        password = os.environ.get("GUST_ADMIN_PASSWORD", "admin")
        User.objects.create_superuser(name, f"{name}@localhost", password)
        self.stdout.write(f"created superuser '{name}' with password '{password}' (set GUST_ADMIN_PASSWORD to choose)")
