"""The pure parts: action inputs, the form schema, the quorum rule and the
form built from the schema. No database."""

import pytest

from approvals import schema
from approvals.decision import APPROVED, REJECTED, decide
from approvals.forms import AnswerForm
from approvals.models import Approval
from approvals.params import InvalidParams, parse

from .conftest import FORM

# --- inputs of gust.approval -------------------------------------------------------


def test_minimal_inputs_get_the_documented_defaults():
    p = parse({"title": " Ship it? ", "assignees": ["alice"]})
    assert (p.title, p.quorum, p.reject_on_first, p.on_expiry) == ("Ship it?", 1, True, "reject")
    assert (p.expires_in, p.remind_every, p.form, p.groups) == (None, None, {}, [])


def test_names_may_be_a_comma_separated_string_and_duplicates_collapse():
    p = parse({"title": "t", "assignees": "alice, bob,alice", "groups": ["ops"]})
    assert p.assignees == ["alice", "bob"] and p.groups == ["ops"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidParams) as caught:
        parse(
            {
                "title": "",
                "quorum": 0,
                "on_expiry": "ignore",
                "expires_in": -5,
                "remind_every": "often",
                "form": {"type": "array"},
                "reject_on_first": "yes",
            }
        )
    text = str(caught.value)
    for fragment in (
        "title must be a non-empty string",
        "at least one of assignees or groups",
        "quorum must be a whole number",
        "on_expiry must be one of reject, approve, escalate",
        "expires_in must be a positive number",
        "remind_every must be a positive number",
        "form: must describe an object",
        "reject_on_first must be true or false",
    ):
        assert fragment in text
    assert len(caught.value.errors) == 8


def test_quorum_larger_than_the_named_assignees_can_never_be_reached():
    with pytest.raises(InvalidParams, match="quorum 3 is more than the 2 assignee"):
        parse({"title": "t", "assignees": ["a", "b"], "quorum": 3})
    # With a group the number of possible approvers is not known up front.
    assert parse({"title": "t", "assignees": ["a"], "groups": ["ops"], "quorum": 3}).quorum == 3


def test_escalation_needs_a_target_and_an_expiry():
    with pytest.raises(InvalidParams) as caught:
        parse({"title": "t", "assignees": ["a"], "on_expiry": "escalate"})
    assert "escalate needs escalate_to" in str(caught.value) and "escalate needs expires_in" in str(caught.value)


def test_an_invalid_json_schema_is_refused_with_its_location():
    with pytest.raises(InvalidParams, match="invalid JSON Schema at properties/n/type"):
        parse({"title": "t", "assignees": ["a"], "form": {"type": "object", "properties": {"n": {"type": "wat"}}}})


def test_form_field_order_is_kept_as_written():
    p = parse({"title": "t", "assignees": ["a"], "form": {"type": "object", "properties": {"z": {}, "a": {}}}})
    assert p.form_order == ["z", "a"]


# --- the form schema ------------------------------------------------------------------


def test_valid_data_gets_defaults_and_no_errors():
    data, errors = schema.validate(FORM, {"amount": 20})
    assert errors == {} and data == {"amount": 20, "reason": "ok"}


def test_errors_are_reported_on_their_fields():
    _, errors = schema.validate(FORM, {"amount": "lots", "urgent": "yes"})
    assert errors == {"amount": ["'lots' is not of type 'integer'"], "urgent": ["'yes' is not of type 'boolean'"]}
    _, errors = schema.validate(FORM, {"amount": 9000})
    assert errors == {"amount": ["9000 is greater than the maximum of 5000"]}


def test_a_missing_required_field_is_an_error_on_that_field_unless_rejecting():
    _, errors = schema.validate(FORM, {})
    assert errors == {"amount": [schema.REQUIRED_MESSAGE]}
    assert schema.validate(FORM, {}, require=False)[1] == {}
    # ... but what a rejecter does enter must still be valid.
    assert schema.validate(FORM, {"amount": 0}, require=False)[1] == {"amount": ["0 is less than the minimum of 1"]}


def test_data_that_is_not_an_object_is_a_non_field_error():
    assert schema.validate(FORM, [1, 2])[1] == {schema.NON_FIELD: ["data must be a JSON object, not list"]}


def test_no_form_accepts_an_empty_object():
    assert schema.validate({}, None) == ({}, {})


# --- the quorum rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    "quorum, reject_on_first, approvals, rejections, left, expected",
    [
        (1, True, 1, 0, 1, APPROVED),
        (2, True, 1, 0, 1, None),  # one more approval needed and possible
        (2, True, 2, 0, 0, APPROVED),
        (2, True, 1, 1, 5, REJECTED),  # first rejection decides
        (2, False, 1, 1, 5, None),  # ... unless told otherwise
        (2, False, 1, 1, 0, REJECTED),  # nobody left to reach the quorum
        (3, False, 0, 2, 2, REJECTED),  # 0 + 2 < 3
        (3, False, 1, 1, 2, None),
    ],
)
def test_quorum_rules(quorum, reject_on_first, approvals, rejections, left, expected):
    assert (
        decide(
            quorum=quorum,
            reject_on_first=reject_on_first,
            approvals=approvals,
            rejections=rejections,
            can_still_answer=left,
        )
        == expected
    )


# --- the HTML form built from the schema ---------------------------------------------------

RICH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"enum": ["red", "blue"]}},
        "extra": {"type": "object"},
        "size": {"enum": [1, 2]},
    },
}


def answer_form(post: dict) -> AnswerForm:
    form = AnswerForm(Approval(form=RICH, form_order=list(RICH["properties"])), post)
    assert form.is_valid(), form.errors
    return form


def test_the_form_turns_typed_text_into_json_values():
    form = answer_form(
        {"data__ratio": "0.5", "data__tags": ['"red"', '"blue"'], "data__extra": '{"a": [1]}', "data__size": "2"}
    )
    assert form.schema_data() == {"ratio": 0.5, "tags": ["red", "blue"], "extra": {"a": [1]}, "size": 2}
    assert answer_form({"data__ratio": "3"}).schema_data() == {"ratio": 3, "tags": []}
    # Text that does not parse is passed on as text, for the schema to reject with its own message.
    data = answer_form({"data__ratio": "lots", "data__extra": "{oops"}).schema_data()
    assert (data["ratio"], data["extra"]) == ("lots", "{oops")
    assert schema.validate(RICH, data)[1] == {
        "extra": ["'{oops' is not of type 'object'"],
        "ratio": ["'lots' is not of type 'number'"],
    }


def test_schema_errors_without_a_field_go_to_the_top_of_the_form():
    form = answer_form({})
    form.add_schema_errors(
        {"ratio": ["bad"], schema.NON_FIELD: ["Additional properties are not allowed"], "ghost": ["no such field"]}
    )
    assert form.errors["data__ratio"] == ["bad"]
    assert form.non_field_errors() == ["Additional properties are not allowed", "ghost: no such field"]
