"""How an expression's value lands in text and when it keeps its type, as
Mistral 23's InlineYAQLEvaluator and InlineJinjaEvaluator do."""

import pytest

from core.lang.expressions import ExprContext, ExpressionError, evaluate

CTX = ExprContext(data={"x": 2, "n": None, "d": {"a": 1}, "l": [1, "b"]})


@pytest.mark.parametrize(
    "text,value",
    [
        ("<% $.x %>", 2),  # the whole string: the value's own type
        ("{{ _.x }}", 2),
        ("<% $.x %>\n", "2\n"),  # anything around it makes text
        (" <% $.x %>", " 2"),
        ("{{ _.x }}\n", "2"),  # Jinja drops the last newline of a template
        ("Hello <% $.n %>", "Hello None"),  # Python's str(), as Mistral
        ("D <% $.d %>", "D {'a': 1}"),
        ("L <% $.l %>", "L [1, 'b']"),
        ("{{ _.d }} x", "{'a': 1} x"),
    ],
)
def test_values_in_text_and_whole_expressions(text, value):
    assert evaluate(text, CTX) == value


@pytest.mark.parametrize("text", ["{{ _.missing }}", "a {{ _.missing }}"])
def test_an_undefined_name_in_jinja_fails_as_in_mistral(text):
    with pytest.raises(ExpressionError, match="has no attribute 'missing'"):
        evaluate(text, CTX)
