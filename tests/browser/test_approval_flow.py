"""An approval from upload to the finished execution, in a real browser:
Alice uploads a workflow that asks her, starts it, answers the form (a
schema error first), and watches the execution page, which she never
reloads, turn SUCCESS. Bob, who is not an assignee, is refused and changes
nothing."""

import re

import pytest
from playwright.sync_api import expect

from approvals.models import Approval, ApprovalResponse

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

PURCHASE = """version: '2.0'
purchase:
  description: Buy something once Alice agrees.
  input:
    - item
  output:
    approved: <% $.approved %>
    supplier: <% task(ask).result.data.supplier %>
  tasks:
    ask:
      action: gust.approval
      input:
        title: Buy <% $.item %>?
        description: The team asked for it.
        assignees: [alice]
        expires_in: 86400
        form:
          type: object
          required: [amount]
          properties:
            amount: {type: integer, title: Amount (EUR), minimum: 1, maximum: 500}
            supplier: {type: string, title: Supplier, enum: [acme, globex], default: acme}
            note: {type: string, title: Note for accounting}
      publish:
        approved: <% task().result.approved %>
      on-success:
        - buy: <% task().result.approved %>
        - drop: <% not task().result.approved %>
    buy:
      action: std.echo output=<% task(ask).result.data %>
    drop:
      action: std.noop
"""


def test_upload_start_answer_and_watch_the_execution_finish_without_reloading(open_as, people):
    alice = open_as("alice")

    # Upload the workflow from the dashboard.
    alice.goto("/workflows/new/")
    alice.fill("#id_definition", PURCHASE)
    alice.click("button:has-text('Save')")
    expect(alice.locator(".messages")).to_contain_text("Saved 1 workflow(s): purchase.")

    # Start it from the UI.
    alice.fill("#id_input__item", "a standing desk")
    alice.click("button:has-text('Start')")
    expect(alice).to_have_url(re.compile(r"/executions/[0-9a-f-]{36}/(#start)?$"))  # the form posts to #start
    expect(alice.locator("#execution-state")).to_have_text("RUNNING")
    expect(alice.locator("g.node.state-running", has_text="ask")).to_be_visible()
    execution_url = alice.url
    alice.evaluate("window.__notReloaded = true")  # gone if the page ever reloads

    # Bob may not answer: the page says so with a 403 and a forged POST changes nothing.
    approval = Approval.objects.get()
    bob = open_as("bob")
    response = bob.goto(f"/approvals/{approval.id}/")
    assert response.status == 403
    expect(bob.locator("[role=alert]")).to_contain_text("bob is not an assignee of this approval")
    token = next(c["value"] for c in bob.context.cookies() if c["name"] == "csrftoken")
    forged = bob.request.post(
        f"/approvals/{approval.id}/",
        form={"csrfmiddlewaretoken": token, "decision": "approve", "data__amount": "5"},
        headers={"Referer": bob.url},
    )
    assert forged.status == 403 and "Nothing was changed" in forged.text()
    assert ApprovalResponse.objects.count() == 0
    shoot(bob, "approval-forbidden")

    # Alice finds it in her inbox, in a second tab.
    inbox = alice.context.new_page()
    inbox.goto("/approvals/")
    expect(inbox.locator("#inbox")).to_contain_text("Buy a standing desk?")
    shoot(inbox, "approval-inbox", docs=True)
    inbox.click("text=Buy a standing desk?")
    expect(inbox.locator("#approval-status")).to_have_text("PENDING")

    # A value the schema refuses comes back on its field, and nothing is stored.
    inbox.fill("#id_data__amount", "900")
    inbox.click("button[value=approve]")
    expect(inbox.locator("[data-field=amount] .field-error")).to_have_text("900 is greater than the maximum of 500")
    expect(inbox.locator("#id_data__amount")).to_have_value("900")
    assert ApprovalResponse.objects.count() == 0
    shoot(inbox, "approval-form", docs=True)

    inbox.fill("#id_data__amount", "320")
    inbox.select_option("#id_data__supplier", label="globex")
    inbox.fill("#id_comment", "Within budget.")
    inbox.click("button[value=approve]")
    expect(inbox.locator(".messages")).to_contain_text("You approved “Buy a standing desk?”.")
    expect(inbox.locator("#history")).to_contain_text("Within budget.")
    shoot(inbox, "approval-answered")

    # The first tab turns SUCCESS by itself.
    expect(alice.locator("#execution-state")).to_have_text("SUCCESS")
    expect(alice.locator("g.node.state-success", has_text="buy")).to_be_visible()
    expect(alice.locator("#execution-output")).to_contain_text('"supplier": "globex"')
    assert alice.url == execution_url and alice.evaluate("window.__notReloaded") is True
    assert int(alice.locator("#live").get_attribute("data-live-refreshes")) >= 1
    shoot(alice, "execution", docs=True)
