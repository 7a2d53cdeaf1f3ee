"""Where Slack messages go: the token and endpoint, from the environment or Airflow.

Order: MLWATCH_SLACK_TOKEN; else the Airflow connection named in the configuration
(from AIRFLOW_CONN_<ID> or, inside an Airflow task, Airflow's secrets). The endpoint is
MLWATCH_SLACK_BASE_URL, else the connection's extra `base_url`, else Slack itself. The
token is never logged or written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from urllib.error import URLError
from urllib.parse import parse_qs, unquote, urlsplit

from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from mlwatch.config import Config

log = logging.getLogger(__name__)

TOKEN_ENV = "MLWATCH_SLACK_TOKEN"
BASE_URL_ENV = "MLWATCH_SLACK_BASE_URL"


@dataclass(frozen=True)
class SlackTarget:
    token: str
    base_url: str | None
    source: str          # where the token came from, for messages (never the token)

    def __repr__(self) -> str:
        return f"SlackTarget(source={self.source!r}, base_url={self.base_url!r})"


def _connection_from_env(conn_id: str) -> tuple[str | None, dict]:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None, {}
    if raw.lstrip().startswith("{"):
        data = json.loads(raw)
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        return data.get("password"), extra
    parts = urlsplit(raw)
    extra = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return (unquote(parts.password) if parts.password else None), extra


def _connection_from_airflow(conn_id: str) -> tuple[str | None, dict]:
    # Only inside a running task: elsewhere Airflow's lookup would need its database.
    if not os.environ.get("AIRFLOW_CTX_DAG_ID"):
        return None, {}
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # the connection is optional: no Slack means the outbox
        log.info("no Airflow connection %r (%s); alerts go to the outbox", conn_id, type(exc).__name__)
        return None, {}
    return conn.password, conn.extra_dejson or {}


def resolve(config: Config) -> SlackTarget | None:
    base_url = os.environ.get(BASE_URL_ENV) or None
    token = os.environ.get(TOKEN_ENV)
    if token:
        return SlackTarget(token=token, base_url=base_url, source=TOKEN_ENV)
    conn_id = config.slack.connection_id
    for lookup in (_connection_from_env, _connection_from_airflow):
        token, extra = lookup(conn_id)
        if token:
            return SlackTarget(token=token, base_url=base_url or extra.get("base_url") or None,
                               source=f"Airflow connection {conn_id}")
    return None


def refused(error: BaseException | None) -> bool:
    """Whether a request failed because the connection was refused: then it never left."""
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ConnectionRefusedError)


class RefusedConnectionRetryHandler(ConnectionErrorRetryHandler):
    """Retries only a connection that was refused: then the request never left."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is None and refused(error)


def client(target: SlackTarget):
    """A slack-sdk WebClient that waits out 429 (honouring Retry-After) and retries a refused connection.

    Nothing else is retried here: after a 5xx or a broken connection a post may have
    reached Slack, so mlwatch.alerts.posting checks the channel before trying again.
    """
    from slack_sdk import WebClient

    kwargs = {"token": target.token, "timeout": 30}
    if target.base_url:
        kwargs["base_url"] = target.base_url if target.base_url.endswith("/") else target.base_url + "/"
    return WebClient(**kwargs, retry_handlers=[
        RefusedConnectionRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),
    ])
