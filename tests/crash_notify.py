"""Run a night's notify step and die with SIGKILL at a chosen point (for tests/test_delivery_crash.py).

    python -m tests.crash_notify CONFIG NIGHT POINT

POINT is where the process kills itself, as `kill -9` would:
  before_post     the outbox has recorded the intent; the request has not left
  after_answer    Slack accepted the post and answered; the outbox has not recorded it
  before_reply    a resolved alert's message was edited; its thread reply has not left
  after_reply     the thread reply was accepted; the outbox has not recorded it
  none            no crash
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys

from slack_sdk import WebClient

from mlwatch.alerts import delivery
from mlwatch.config import load_config
from mlwatch.warehouse import connect_writer


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(config_path: str, night: str, point: str) -> None:
    post = WebClient.chat_postMessage
    mark = delivery._mark_delivered

    def chat_post(self, **kwargs):
        reply = bool(kwargs.get("thread_ts"))
        if (point == "before_post" and not reply) or (point == "before_reply" and reply):
            die()
        return post(self, **kwargs)

    def mark_delivered(con, row, status, ts):
        if (point == "after_answer" and row["kind"] != "alert_resolved") or \
                (point == "after_reply" and row["kind"] == "alert_resolved"):
            die()
        return mark(con, row, status, ts)

    WebClient.chat_postMessage = chat_post
    delivery._mark_delivered = mark_delivered
    config = load_config(config_path)
    with connect_writer(config.warehouse) as con:
        delivery.enqueue(con, config, dt.date.fromisoformat(night))
        delivery.deliver(con, config)


if __name__ == "__main__":
    main(*sys.argv[1:])
