"""The parameters the tracker adds to the async HTTP actions it serves."""

from core import actions

# How an async action's result comes back: "callback" (the outside system calls
# the API), "poll" (the results tracker queries status_url), or "hybrid"
# (callback, with polling after `grace` seconds).
TRACKING_PARAMS = (
    ("tracking", "callback"),
    ("status_url", None),
    ("query_interval", None),
    ("grace", None),
)
MODES = ("callback", "poll", "hybrid")
TRACKED_ACTIONS = ("std.mistral_http", "gust.http_job")


def register() -> None:
    from tracker import remote

    actions.add_params(TRACKED_ACTIONS, TRACKING_PARAMS, {"tracking": MODES})
    remote.register()  # mistral.workflow: a remote Mistral execution, tracked the same three ways
