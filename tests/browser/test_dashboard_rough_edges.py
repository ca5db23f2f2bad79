"""Rough edges a new user meets on the dashboard, in a real browser: a
duplicate upload says which box to tick, a start without a required input
shows the error on that field and starts nothing, and the favicon loads."""

import re

import pytest
from playwright.sync_api import expect

from workflows import services
from workflows.models import WorkflowDefinition, WorkflowExecution

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

QUICK = """version: '2.0'
quick:
  tasks:
    only:
      action: std.echo output="done"
"""

WAITER = """version: '2.0'
waiter:
  input:
    - who
    - count: 3
  tasks:
    prepare:
      action: std.echo output=<% $.who %>
      on-success: [wait_here]
    wait_here:
      action: std.async_noop
"""


def test_a_duplicate_upload_says_to_tick_replace_and_replaces_once_ticked(open_as, people):
    alice = open_as("alice")
    alice.goto("/workflows/new/")
    alice.fill("#id_definition", QUICK)
    alice.click("button:has-text('Save')")
    expect(alice.locator(".messages")).to_contain_text("Saved 1 workflow(s): quick.")

    edited = QUICK.replace('"done"', '"again"')
    alice.goto("/workflows/new/")
    alice.fill("#id_definition", edited)
    alice.click("button:has-text('Save')")
    expect(alice.locator(".form-errors[role=alert]")).to_have_text(
        "Workflow quick already exists: tick “Replace workflows that already exist” to replace it."
    )
    expect(alice.locator("#id_definition")).to_have_value(edited)  # nothing typed is lost
    assert '"done"' in WorkflowDefinition.objects.get(name="quick").definition
    shoot(alice, "upload-duplicate")

    alice.get_by_label("Replace workflows that already exist").check()
    alice.click("button:has-text('Save')")
    expect(alice.locator(".messages")).to_contain_text("Saved 1 workflow(s): quick.")
    assert '"again"' in WorkflowDefinition.objects.get(name="quick").definition


def test_a_start_without_a_required_input_shows_the_error_on_that_field_and_starts_nothing(open_as, people):
    services.save_workflows(WAITER)
    alice = open_as("alice")
    alice.goto("/workflows/waiter/")
    alice.fill("#id_description", "by hand")
    alice.click("button:has-text('Start')")

    who = alice.locator("#start .field", has=alice.locator("#id_input__who"))
    count = alice.locator("#start .field", has=alice.locator("#id_input__count"))
    expect(who.locator(".form-errors")).to_contain_text("missing required input 'who'")
    expect(alice.locator("#id_input__who")).to_have_attribute("aria-invalid", "true")
    expect(count.locator(".form-errors")).to_have_count(0)
    expect(alice.locator("#id_description")).to_have_value("by hand")  # what was typed stays
    assert WorkflowExecution.objects.count() == 0
    shoot(alice, "start-missing-input")

    alice.fill("#id_input__who", "ann")
    alice.click("button:has-text('Start')")
    expect(alice).to_have_url(re.compile(r"/executions/[0-9a-f-]{36}/(#start)?$"))
    assert WorkflowExecution.objects.get().input == {"who": "ann", "count": 3}


def test_the_favicon_is_linked_and_loads_also_where_pages_do_not_link_it(open_as, people):
    alice = open_as("alice")
    alice.goto("/workflows/")
    icon = alice.locator("link[rel=icon]")
    expect(icon).to_have_attribute("type", "image/svg+xml")
    href = icon.get_attribute("href")
    # The browser decodes it as an image (a 404 or an HTML page would not load).
    size = alice.evaluate(
        """href => new Promise((ok, fail) => {
        const img = new Image(); img.onload = () => ok([img.naturalWidth, img.naturalHeight]);
        img.onerror = () => fail(new Error('the favicon did not load')); img.src = href; })""",
        href,
    )
    assert min(size) > 0
    # The admin links none, so browsers ask for /favicon.ico there.
    for url in (href, "/favicon.ico"):
        got = alice.request.get(url)
        assert got.status == 200 and got.headers["content-type"] == "image/svg+xml", url
