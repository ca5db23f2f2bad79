"""``manage.py load_samples``, which bin/run runs at every start: it creates
the samples that are missing, never overwrites one a user edited (unless
``--force``), and points the ``fetch`` sample at this installation's public
URL."""

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from workflows import services
from workflows.models import WorkflowDefinition

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def load_samples(*args) -> str:
    out = io.StringIO()
    call_command("load_samples", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def public_url(settings):
    def use(url):
        settings.GUST = {**settings.GUST, "PUBLIC_URL": url}

    return use


def definition(name: str) -> str:
    return WorkflowDefinition.objects.get(name=name).definition


def test_a_fresh_database_gets_every_sample(public_url):
    public_url("http://127.0.0.1:8000")
    out = load_samples()
    assert set(WorkflowDefinition.objects.values_list("name", flat=True)) == {
        "hello",
        "branches",
        "fetch",
        "fan_out",
        "greet_one",
    }
    assert "created hello" in out and "created fetch" in out
    assert definition("hello") == (SAMPLES / "hello.yaml").read_text()


def test_a_second_start_changes_nothing(public_url):
    public_url("http://127.0.0.1:8000")
    load_samples()
    before = {w.name: w.updated_at for w in WorkflowDefinition.objects.all()}
    out = load_samples()
    assert "unchanged hello" in out
    assert {w.name: w.updated_at for w in WorkflowDefinition.objects.all()} == before


def test_a_sample_the_user_edited_is_left_alone_and_the_output_says_so(public_url):
    public_url("http://127.0.0.1:8000")
    load_samples()
    edited = definition("hello").replace("'hello ' + $.name", "'bonjour ' + $.name")
    services.save_workflows(edited, update=True)

    out = load_samples()
    assert definition("hello") == edited
    assert "left hello as it is: it differs from samples/hello.yaml (--force replaces it)" in out
    assert "unchanged branches" in out

    out = load_samples("--force")
    assert definition("hello") == (SAMPLES / "hello.yaml").read_text()
    assert "replaced hello with samples/hello.yaml" in out


def test_a_deleted_sample_comes_back(public_url):
    public_url("http://127.0.0.1:8000")
    load_samples()
    services.delete_workflow("branches")
    assert "created branches" in load_samples()
    assert WorkflowDefinition.objects.filter(name="branches").exists()


def test_fetch_calls_the_public_url_of_this_installation(
    public_url, outside_service, django_capture_on_commit_callbacks
):
    # bin/run on another port (GUST_PORT) sets GUST_PUBLIC_URL to match; the
    # outside service stands in for Gust's own /v2 there.
    public_url(outside_service.url)
    load_samples()
    assert WorkflowDefinition.objects.get(name="fetch").input == f'url="{outside_service.url}/v2/"'
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("fetch")
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"status": 200}
    assert [r["path"] for r in outside_service.requests] == ["/v2/"]


def test_a_start_on_another_port_moves_fetch_there_and_is_not_taken_for_an_edit(public_url):
    public_url("http://127.0.0.1:8000")
    load_samples()
    public_url("http://127.0.0.1:8765")
    out = load_samples()
    assert "updated fetch for http://127.0.0.1:8765" in out
    assert "http://127.0.0.1:8765/v2/" in definition("fetch") and "8000" not in definition("fetch")


def test_the_fan_out_sample_runs_its_sub_workflow_per_item(public_url):
    public_url("http://127.0.0.1:8000")
    load_samples()
    ex = services.start_execution("fan_out", {})
    ex.refresh_from_db()
    assert ex.state == "SUCCESS", ex.state_info
    assert ex.output == {"greetings": ["hello ada", "hello grace", "hello linus"]}
