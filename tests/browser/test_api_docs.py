"""The API schema page in a real browser: Swagger UI served by Gust itself
(nothing asked of another host), Gust's /api first, and the Mistral-shaped
/v2 a pick away in the top bar's selector."""

import pytest
from playwright.sync_api import expect

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_api_docs_switch_to_v2_and_show_its_executions_with_nothing_from_the_internet(open_as, people, live_server):
    alice = open_as("alice")
    elsewhere = []
    alice.on("request", lambda r: None if r.url.startswith((live_server.url, "data:")) else elsewhere.append(r.url))
    alice.goto("/api/docs")
    expect(alice.locator(".opblock-summary-path[data-path='/api/approvals/']").first).to_be_visible()

    alice.locator(".topbar select").select_option(label="Mistral-compatible /v2")
    expect(alice.locator(".info .title")).to_contain_text("Gust /v2 (Mistral-compatible)")
    executions = alice.locator(".opblock-tag-section", has=alice.locator("h3[data-tag=executions]"))
    for method, path in (
        ("GET", "/v2/executions"),
        ("POST", "/v2/executions"),
        ("PUT", "/v2/executions/{execution_id}"),
        ("GET", "/v2/executions/{execution_id}/report"),
    ):
        op = executions.locator(".opblock", has=alice.locator(f".opblock-summary-path[data-path='{path}']"))
        expect(op.locator(".opblock-summary-method", has_text=method)).to_be_visible()
    expect(alice.locator(".opblock-summary-path[data-path='/api/approvals/']")).to_have_count(0)

    alice.locator("h3.opblock-tag[data-tag=workflows]").click()  # folded, so the window shows executions
    expect(alice.locator(".opblock-summary-path[data-path='/v2/workflows']")).to_have_count(0)
    shoot(alice, "api-docs", docs=True, full_page=False)

    # A click opens an operation: its body and its documented answers.
    start = executions.locator(".opblock-post", has=alice.locator("[data-path='/v2/executions']"))
    start.locator(".opblock-summary").click()
    expect(start.locator(".responses-table")).to_contain_text("the execution")
    expect(start.locator(".body-param__example")).to_contain_text("workflow_name")
    assert elsewhere == []
