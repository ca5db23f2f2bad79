"""Event-trace log lines, one per state change, in the style of Mistral's
st2 notifier (seed 000), so ``grep <execution id>`` tells the whole story:

    [<exec id>] The workflow event WORKFLOW_LAUNCHED for <exec id> (workflow hello)
    [<exec id>] The task event TASK_SUCCEEDED for <task id> (task say_hello)
"""

import logging

from core.engine import TraceEvent

logger = logging.getLogger("gust.trace")


def format_event(event: TraceEvent, workflow_name: str) -> str:
    if event.task_id:
        line = (
            f"[{event.execution_id}] The task event {event.kind} for {event.task_id} "
            f"(task {event.task_name}, workflow {workflow_name})"
        )
    else:
        line = (
            f"[{event.execution_id}] The workflow event {event.kind} for {event.execution_id} "
            f"(workflow {workflow_name})"
        )
    if event.state_info and event.kind in ("TASK_FAILED", "WORKFLOW_FAILED"):
        line += f": {event.state_info.splitlines()[0]}"
    return line


def emit(events: list[TraceEvent], workflow_name: str) -> None:
    for event in events:
        logger.info(format_event(event, workflow_name))
