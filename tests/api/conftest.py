"""Shared helpers for the /v2 API tests.

``mistral``: runs the real ``mistral`` command of python-mistralclient (the
one installed next to the running Python) against pytest-django's
``live_server``. ``api``: thin JSON helpers around the Django test client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

MISTRAL_BIN = Path(sys.executable).parent / "mistral"

# The workflow of the reference transcript (shared/mistral-reference/cli-transcript.md).
CLI_DEMO_YAML = """\
---
version: '2.0'

cli_demo:
  description: std.echo + std.async_noop in parallel, then a join.
  input:
    - name: world
  output:
    echoed: <% $.echoed %>
    async_result: <% $.async_result %>
    joined: <% $.joined %>
  tasks:
    say_hello:
      action: std.echo output=<% 'hello ' + $.name %>
      publish:
        echoed: <% task().result %>
      on-success: join_both
    wait_external:
      action: std.async_noop
      publish:
        async_result: <% task().result %>
      on-success: join_both
    join_both:
      join: all
      action: std.echo output="joined"
      publish:
        joined: <% task().result %>
"""

CLI_BAD_YAML = """\
---
version: '2.0'
cli_bad:
  tasks:
    t1:
      action: std.echo output=<% $.x + %>
"""


@pytest.fixture
def cli_demo_yaml() -> str:
    return CLI_DEMO_YAML


@pytest.fixture
def cli_bad_yaml() -> str:
    return CLI_BAD_YAML


# --- the real CLI ------------------------------------------------------------


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    def __str__(self):
        return f"mistral {' '.join(self.args)} -> {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class MistralCli:
    """``cli("workflow-get", "x")`` runs the command and checks its exit
    status: 0 unless ``fail=True``, then anything but 0."""

    def __init__(self, url: str, workdir: Path):
        self.url = url
        self.workdir = workdir
        # No keystone: a stray OS_AUTH_URL/OS_TOKEN in the environment would
        # make the client try to authenticate.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.calls = 0

    def __call__(self, *args: str, fail: bool = False) -> CliResult:
        argv = [str(MISTRAL_BIN), "--os-mistral-url", self.url, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=self.workdir, env=self.env, timeout=60)
        self.calls += 1
        result = CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)
        if fail:
            assert result.returncode != 0, f"expected a failure: {result}"
        else:
            assert result.returncode == 0, f"expected success: {result}"
        return result

    def json(self, *args: str):
        """The command with ``-f json`` (show/list commands), parsed."""
        return self(*args, "-f", "json").json

    def value(self, *args: str) -> str:
        """The command with ``-f value``, stripped."""
        return self(*args, "-f", "value").stdout.strip()

    def file(self, name: str, text: str) -> str:
        path = self.workdir / name
        path.write_text(text)
        return str(path)


@pytest.fixture
def mistral(live_server, tmp_path) -> MistralCli:
    if not MISTRAL_BIN.exists():
        pytest.skip(f"python-mistralclient is not installed ({MISTRAL_BIN} missing)")
    return MistralCli(f"{live_server.url}/v2", tmp_path)


# --- the Django test client --------------------------------------------------


class Api:
    """JSON in, (status, decoded body) out."""

    def __init__(self, client):
        self.client = client

    @staticmethod
    def _decode(resp):
        if not resp.content:
            return None
        return json.loads(resp.content)

    def get(self, path: str, **params):
        resp = self.client.get(path, params)
        return resp.status_code, self._decode(resp)

    def post(self, path: str, body=None, **kw):
        resp = self.client.post(path, json.dumps(body), content_type="application/json", **kw)
        return resp.status_code, self._decode(resp)

    def put(self, path: str, body=None):
        resp = self.client.put(path, json.dumps(body), content_type="application/json")
        return resp.status_code, self._decode(resp)

    def delete(self, path: str):
        resp = self.client.delete(path)
        return resp.status_code, self._decode(resp)

    def post_yaml(self, path: str, text: str):
        resp = self.client.post(path, text, content_type="text/plain")
        return resp.status_code, self._decode(resp)

    def create_workflow(self, text: str) -> dict:
        status, body = self.post_yaml("/v2/workflows", text)
        assert status == 201, body
        return body["workflows"][0]

    def start(self, workflow_name: str, workflow_input=None, **extra) -> dict:
        body = {"workflow_name": workflow_name, **extra}
        if workflow_input is not None:
            body["input"] = workflow_input
        status, ex = self.post("/v2/executions", body)
        assert status == 201, ex
        return ex


@pytest.fixture
def api(client) -> Api:
    return Api(client)
