"""Errors of the approval services, on top of ``workflows.errors``
(NotFound 404, InvalidInput 400, Conflict 409)."""

from workflows.errors import GustError, InvalidInput


class Forbidden(GustError):
    """The user may not answer this approval (not an assignee): 403, nothing changes."""

    status = 403


class InvalidData(InvalidInput):
    """The submitted data does not match the approval's form schema: 400 with
    ``field_errors`` = {field: [messages]} ("__all__" for the whole object)."""

    def __init__(self, field_errors: dict[str, list[str]]):
        fields = ", ".join(sorted(field_errors))
        super().__init__(f"The data does not match the form ({fields})")
        self.field_errors = field_errors
