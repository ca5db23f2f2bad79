"""Errors the services raise; the API maps each to a status code."""


class GustError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(GustError):
    status = 404

    def __init__(self, kind: str, ident: str, key: str = "id"):
        super().__init__(f"{kind} not found [{key}={ident}]")


class InvalidInput(GustError):
    """``fields``: the message for each workflow input at fault, by input name."""

    status = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class InvalidDefinition(InvalidInput):
    """Carries every (path, message) pair from validation."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.errors = errors


class Conflict(GustError):
    status = 409

    def __init__(self, message: str, state: str | None = None):
        super().__init__(message)
        self.state = state


class DuplicateWorkflow(Conflict):
    """A workflow of that name exists; ``message`` is Mistral's wording, for the API."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
