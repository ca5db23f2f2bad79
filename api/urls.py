from django.urls import re_path

from api import books as b
from api import cron_triggers as crons
from api import environments as envs
from api import views as v

ID = r"(?P<{}>[^/]+)"

urlpatterns = [
    re_path(r"^$", v.Root.as_view()),
    re_path(r"^workflows/?$", v.Workflows.as_view()),
    re_path(r"^workflows/validate/?$", v.WorkflowValidate.as_view()),
    re_path(rf"^workflows/{ID.format('identifier')}/?$", v.WorkflowDetail.as_view()),
    re_path(r"^executions/?$", v.Executions.as_view()),
    re_path(rf"^executions/{ID.format('execution_id')}/?$", v.ExecutionDetail.as_view()),
    re_path(rf"^executions/{ID.format('execution_id')}/tasks/?$", v.ExecutionTasks.as_view()),
    re_path(rf"^executions/{ID.format('execution_id')}/report/?$", v.ExecutionReport.as_view()),
    re_path(rf"^executions/{ID.format('execution_id')}/executions/?$", v.SubExecutions.as_view()),
    re_path(r"^tasks/?$", v.Tasks.as_view()),
    re_path(rf"^tasks/{ID.format('task_id')}/?$", v.TaskDetail.as_view()),
    re_path(rf"^tasks/{ID.format('task_id')}/action_executions/?$", v.TaskActionExecutions.as_view()),
    re_path(rf"^tasks/{ID.format('task_id')}/executions/?$", v.SubExecutions.as_view()),
    re_path(r"^action_executions/?$", v.ActionExecutions.as_view()),
    re_path(rf"^action_executions/{ID.format('action_id')}/?$", v.ActionExecutionDetail.as_view()),
    # the path in Mistral's async-actions guide
    re_path(rf"^action-executions/{ID.format('action_id')}/?$", v.ActionExecutionDetail.as_view()),
    re_path(r"^actions/?$", b.Actions.as_view()),
    re_path(r"^actions/validate/?$", b.ActionValidate.as_view()),
    re_path(rf"^actions/{ID.format('name')}(?:/{ID.format('namespace')})?/?$", b.ActionDetail.as_view()),
    re_path(r"^workbooks/?$", b.Workbooks.as_view()),
    re_path(r"^workbooks/validate/?$", b.WorkbookValidate.as_view()),
    re_path(rf"^workbooks/{ID.format('name')}/?$", b.WorkbookDetail.as_view()),
    re_path(r"^environments/?$", envs.Environments.as_view()),
    re_path(rf"^environments/{ID.format('name')}/?$", envs.EnvironmentDetail.as_view()),
    re_path(r"^cron_triggers/?$", crons.CronTriggers.as_view()),
    re_path(rf"^cron_triggers/{ID.format('identifier')}/?$", crons.CronTriggerDetail.as_view()),
]
