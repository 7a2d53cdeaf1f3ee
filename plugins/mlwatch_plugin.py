"""mlwatch inside the Airflow UI: the daily reports and the constraint ledger.

Airflow's API server mounts mlwatch's web app (mlwatch.web) under /mlwatch, and the UI
lists two entries under its Plugins menu; both open inside the UI (an iframe) because
they have a `url_route`:

    mlwatch reports     /mlwatch/          -> /mlwatch/reports/index.html, every day's report
    Constraint ledger   /mlwatch/ledger    marts.constraint_ledger, one day at a time (JSON: /mlwatch/api/ledger)

Airflow does not put plugin apps behind its login, so the app checks the caller's Airflow
token itself (mlwatch.web.require_airflow_login): the reports name models, alerts and costs.

Importing this file must stay cheap: the scheduler, the DAG processor and every task
process load plugins too (tasks for macros), and none of them serves web pages. So it
imports neither FastAPI nor mlwatch; the app is built on its first request, and reads
the configuration and the warehouse per request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/mlwatch"


class MlwatchWebApp:
    """An ASGI app that builds mlwatch.web's FastAPI app when the API server first calls it."""

    def __init__(self) -> None:
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from mlwatch.web import create_app, require_airflow_login

            self._app = create_app(dependencies=[require_airflow_login])
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


class MlwatchPlugin(AirflowPlugin):
    name = "mlwatch"
    fastapi_apps = [{"app": MlwatchWebApp(), "url_prefix": URL_PREFIX, "name": "mlwatch reports"}]
    # Airflow 3.1+ UI entries. `href` is what the UI loads: a same-origin path (add [api] base_url's
    # path in front if Airflow is served under one). `url_route` embeds it in the UI, in an iframe
    # at /plugin/<url_route>; without it the entry would open a new tab. `destination` "nav" puts
    # it in the left navigation, under "Plugins" once there are two entries or more.
    external_views = [
        {"name": "mlwatch reports", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "mlwatch-reports"},
        {"name": "Constraint ledger", "href": f"{URL_PREFIX}/ledger", "destination": "nav",
         "url_route": "mlwatch-ledger"},
    ]
