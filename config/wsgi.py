import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from workflows.startup import ensure_migrated, settle_after_start_up  # noqa: E402

ensure_migrated("web server")
settle_after_start_up()
