"""``manage.py remote_mistral_bench``'s figures and arguments (the run itself
starts Mistral 23 and two Gusts; tests/tracker/test_remote_mistral.py runs the
same against a second Gust)."""

import pytest
from django.core.management import CommandError, call_command

from bench import remote


def test_the_summary_gives_percentiles_in_milliseconds():
    s = remote.summary([0.1, 0.2, 0.3, 0.4, 1.0])
    assert s == {"n": 5, "p50_ms": 300.0, "p95_ms": 1000.0, "max_ms": 1000.0, "mean_ms": 400.0}


def test_the_markdown_puts_the_remotes_side_by_side():
    one = remote.summary([0.2])
    result = {
        "n": 1,
        "database": "sqlite",
        "modes": ["callback"],
        "mistral_version": "23.0.0",
        "remotes": {"mistral": {"callback": one}, "gust": {"callback": one}},
        "checks": {"mistral": {"cancel-poll": "ok"}},
    }
    text = remote.markdown(result)
    assert "| mode | mistral p50 ms | mistral p95 ms | gust p50 ms | gust p95 ms |" in text
    assert "| callback | 200.0 | 200.0 | 200.0 | 200.0 |" in text
    assert "mistral: cancel-poll ok" in text and "Mistral 23.0.0" in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--remotes", "stackstorm"], "--remotes takes mistral, gust or both"),
        (["--n", "0"], "--n must be from 1 to 1000"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(args, says):
    with pytest.raises(CommandError, match=says):
        call_command("remote_mistral_bench", *args)


def test_a_missing_mistral_virtualenv_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="no Python at .*no-venv/bin/python"):
        remote.MistralServer(tmp_path / "no-venv", tmp_path / "scratch")
