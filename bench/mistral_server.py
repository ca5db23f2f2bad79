"""Run Mistral 23's API, engine and executor in one process, for
``manage.py remote_mistral_bench`` (run with the Mistral virtualenv's Python,
not Gust's; this file imports no Gust code).

    /work/mistral-venv/bin/python bench/mistral_server.py <scratch dir> <port>

``mistral-server --server all`` forks one process per service, which then
need a message broker (RabbitMQ) between them; in one process oslo.messaging's
``fake:/`` transport does, as Mistral's own engine tests run it. The
configuration written to <scratch dir>/mistral.conf: authentication off
(``[pecan] auth_enable``), a SQLite database in the scratch directory, the
local executor and notifier, and ``[action_std_http] denied_cidrs`` empty so
its webhooks may reach Gust on 127.0.0.1 (Mistral 23 refuses loopback by
default). Prints ``listening on <url>`` once the API answers.
"""

import os
import sys
import time

CONF_TEXT = """[DEFAULT]
transport_url = fake:/
log_file = {scratch}/mistral.log
[api]
host = 127.0.0.1
port = {port}
[pecan]
auth_enable = False
[database]
connection = sqlite:///{scratch}/mistral.sqlite
[executor]
type = local
[notifier]
type = local
[action_std_http]
denied_cidrs =
[coordination]
backend_url =
"""


def main(scratch: str, port: int) -> None:
    conf_path = os.path.join(scratch, "mistral.conf")
    with open(conf_path, "w") as f:
        f.write(CONF_TEXT.format(scratch=scratch, port=port))

    import oslo_messaging as messaging
    from mistral import config
    from oslo_config import cfg
    from oslo_log import log as logging

    config.parse_args(["--config-file", conf_path])
    logging.setup(cfg.CONF, "mistral")
    messaging.get_transport(cfg.CONF)
    cfg.CONF.set_default("transport_url", "fake:/")

    from mistral.api import service as api_service
    from mistral.db.v2 import api as db_api
    from mistral.engine import engine_server
    from mistral.rpc import base as rpc_base
    from mistral.rpc import clients as rpc_clients
    from mistral.services import actions as action_service

    rpc_base.cleanup()
    rpc_clients.cleanup()
    db_api.setup_db()
    engine = engine_server.get_oslo_service(setup_profiler=False)
    engine.start()
    action_service.get_system_action_provider()
    engine.wait_started()
    api = api_service.WSGIService("mistral_api")
    api.start()
    print(f"listening on http://127.0.0.1:{port}/v2", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
