import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from workflows.startup import ensure_migrated  # noqa: E402

ensure_migrated("web server")
