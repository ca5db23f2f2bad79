"""The Django admin as an operator meets it: English names, and execution
rows that only the engine writes."""

import re

import pytest
from django.apps import apps

pytestmark = pytest.mark.django_db

GUST_APPS = ("workflows", "tracker", "approvals")


def needs_es_or_ies(word: str) -> bool:
    """English words that do not take a bare "s" in the plural (process, inbox, delivery)."""
    return word.endswith(("s", "x", "z", "ch", "sh")) or re.search(r"[^aeiou]y$", word) is not None


def test_every_gust_model_has_an_english_plural():
    wrong = [
        f"{m._meta.label}: {m._meta.verbose_name_plural}"
        for app in GUST_APPS
        for m in apps.get_app_config(app).get_models()
        if m._meta.verbose_name_plural == m._meta.verbose_name + "s" and needs_es_or_ies(str(m._meta.verbose_name))
    ]
    assert wrong == []


def test_the_admin_index_reads_as_english(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "Tracker processes" in html and "Webhook deliveries" in html
    assert "processs" not in html and "deliverys" not in html
