"""The workbook and action pages of the dashboard (Django test client);
data made through workflows.books, as the API makes it."""

import pytest
from django.urls import reverse

from workflows import books

pytestmark = pytest.mark.django_db

WB = """\
version: '2.0'
name: shop
description: the shop's flows
actions:
  price:
    input: [item]
    base: std.echo output=<% $.item %>
workflows:
  buy:
    input: [item]
    tasks:
      t:
        action: price item=<% $.item %>
"""


def test_the_workbook_list_shows_each_workbook_with_its_namespace(client):
    books.save_workbook(WB)
    books.save_workbook(WB, "team")
    page = client.get(reverse("dashboard:workbooks")).content.decode()
    assert page.count("the shop&#x27;s flows") == 2
    assert 'href="/workbooks/shop/?namespace=team"' in page
    assert '<span class="chip" title="namespace">team</span>' in page


def test_a_workbook_page_highlights_its_definition_and_links_its_workflows(client):
    books.save_workbook(WB, "team")
    resp = client.get(reverse("dashboard:workbook", args=["shop"]) + "?namespace=team")
    page = resp.content.decode()
    assert resp.status_code == 200
    assert '<div class="highlight">' in page  # pygments, as the workflow page
    assert 'href="/workflows/shop.buy/?namespace=team"' in page
    assert "<code>shop.price</code> (base <code>std.echo output=&lt;% $.item %&gt;</code>)" in page
    assert client.get(reverse("dashboard:workbook", args=["shop"])).status_code == 404  # not in the default one
    workflow_page = client.get("/workflows/shop.buy/?namespace=team").content.decode()
    assert 'href="/workbooks/shop/?namespace=team">shop</a>' in workflow_page


def test_the_action_list_shows_adhoc_actions_beside_the_built_ins(client):
    books.save_workbook(WB)
    books.save_actions("version: '2.0'\nshout:\n  base: std.echo\n  input: [text]\n  description: loud\n", "team")
    page = client.get(reverse("dashboard:actions")).content.decode()
    assert "<strong>shop.price</strong>" in page and "<strong>shout</strong>" in page
    assert 'href="/workbooks/shop/">shop</a>' in page
    assert "<strong>std.echo</strong>" in page and "<code>output, delay=0</code>" in page
    assert '<span class="chip" title="namespace">team</span>' in page
