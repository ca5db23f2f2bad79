"""Definitions shared by the tests of the execution report, the CLI and the
execution page for sub-workflows and with-items."""

_NOOP_THEN_FAIL = """\
  tasks:
    task1:
      action: std.noop
      on-success: task2
    task2:
      action: std.fail
"""

# Mistral's test_execution_report.py workflows (its workbook's two as plain workflows).
SEQUENCE = "version: '2.0'\nwf:\n" + _NOOP_THEN_FAIL
NESTED = (
    """\
---
version: '2.0'
parent_wf:
  tasks:
    task1:
      action: std.noop
      on-success: task2
    task2:
      workflow: sub_wf
      on-success: task3
    task3:
      action: std.fail
sub_wf:
"""
    + _NOOP_THEN_FAIL
)

# A with-items task over a sub-workflow whose one task waits to be completed.
ITEMS_OVER_CHILDREN = """
version: '2.0'
parent:
  tasks:
    fan:
      with-items: x in [1, 2]
      workflow: child x=<% $.x %>
child:
  input: [x]
  tasks:
    one:
      action: std.async_noop
"""

ONE_ASYNC = """
version: '2.0'
wf1:
  tasks:
    task1:
      action: std.async_noop
"""
