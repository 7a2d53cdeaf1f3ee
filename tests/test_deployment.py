"""docker-compose.yml and the Dockerfile agree with the project.

Read as YAML, no docker needed; `docker compose config` also checks the file when the
compose plugin is installed (it works offline and without a daemon).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import PurePosixPath

import pytest
import yaml

from tests.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "airflow api-server",
    "airflow-scheduler": "airflow scheduler",
    "airflow-dag-processor": "airflow dag-processor",
    "airflow-triggerer": "airflow triggerer",
}
PROJECT_FOLDERS = ("dags", "plugins", "include", "dbt")
INSTALL_AT_START = re.compile(r"\b(pip|uv pip|pip3|poetry|conda)\b.*\binstall\b|_PIP_ADDITIONAL_REQUIREMENTS")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Instructions, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def pin(package: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.split()[0].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def text(value) -> str:
    return value if isinstance(value, str) else " ".join(map(str, value or []))


def env(service: dict) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def mounts(service: dict) -> dict[str, str]:
    """target -> source of the service's volumes (short syntax or long)."""
    result = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        result[target] = source
    return result


def mount_of(service: dict, path: str) -> tuple[str, str] | None:
    """The (source, target) of the mount that holds `path`, the deepest one."""
    candidates = [(t, s) for t, s in mounts(service).items()
                  if PurePosixPath(path) == PurePosixPath(t) or PurePosixPath(t) in PurePosixPath(path).parents]
    if not candidates:
        return None
    target, source = max(candidates, key=lambda ts: len(ts[0]))
    return source, target


def airflow_services(compose):
    return {name: compose["services"][name] for name in AIRFLOW_SERVICES}


def test_the_services_of_an_airflow_3_deployment_are_there(compose):
    services = compose["services"]
    assert {"postgres", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        if command:
            assert text(services[name].get("command")).strip() == command, name
            assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    init = text(services["airflow-init"]["command"])
    assert "airflow db migrate" in init
    # The tasks that write the warehouse queue in this one-slot pool.
    assert re.search(r"airflow pools set duckdb_writer 1\b", init)
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"].get("healthcheck")


def test_local_executor_with_the_metadata_database_on_postgres(compose):
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    for name, service in airflow_services(compose).items():
        variables = env(service)
        assert variables["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        url = variables["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert re.match(r"postgresql(\+psycopg2)?://[^@]+@postgres:5432/\w+$", url), (name, url)


def test_airflow_3_components_can_talk_to_each_other(compose):
    for name, service in airflow_services(compose).items():
        variables = env(service)
        # LocalExecutor tasks report to the api-server's Execution API with JWTs the
        # scheduler signs: one URL and one secret for every component.
        assert variables["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert variables.get("AIRFLOW__API_AUTH__JWT_SECRET"), name
        # The api-server reads task logs from the worker's log server, signed with this key.
        assert variables.get("AIRFLOW__API__SECRET_KEY"), name
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len({env(s)[key] for s in airflow_services(compose).values()}) == 1, key
    assert "8080:8080" in [str(p) for p in compose["services"]["airflow-apiserver"].get("ports", [])]


def test_airflow_on_postgres_has_its_async_driver():
    # Airflow 3 opens an async engine next to the sync one; for postgresql it derives
    # postgresql+asyncpg, and every `airflow` command fails at import without asyncpg.
    pin("asyncpg")


def test_one_image_built_from_the_dockerfile(compose):
    images = set()
    for name, service in airflow_services(compose).items():
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), name
        if isinstance(build, dict):
            assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        images.add(service.get("image"))
    assert len(images) == 1


def test_requirements_are_installed_when_the_image_is_built_not_when_a_container_starts(compose, dockerfile):
    copied = [i for i in dockerfile if i.upper().startswith("COPY") and "requirements.txt" in i]
    assert copied, "the Dockerfile does not copy requirements.txt"
    installs = [i for i in dockerfile
                if i.upper().startswith("RUN") and re.search(r"install\b.*-r \S*requirements\.txt", i)]
    assert installs, "the Dockerfile does not install requirements.txt"
    assert dockerfile.index(copied[0]) < dockerfile.index(installs[0])
    for name, service in compose["services"].items():
        for field in ("command", "entrypoint"):
            assert not INSTALL_AT_START.search(text(service.get(field))), (name, field)
        for key, value in env(service).items():
            assert not INSTALL_AT_START.search(f"{key}={value}"), (name, key)


def test_the_project_folders_are_mounted_where_airflow_and_mlwatch_look(compose, dockerfile):
    copied_include = next(i.split()[-1] for i in dockerfile if re.match(r"COPY\s+include\s", i))
    for name, service in airflow_services(compose).items():
        by_source = {source.rstrip("/"): target for target, source in mounts(service).items()}
        for folder in PROJECT_FOLDERS:
            assert f"./{folder}" in by_source, (name, folder)
        variables = env(service)
        assert by_source["./dags"] == variables["AIRFLOW__CORE__DAGS_FOLDER"]
        assert by_source["./plugins"] == variables["AIRFLOW__CORE__PLUGINS_FOLDER"]
        assert by_source["./dbt"] == variables["MLWATCH_DBT_PROJECT"]
        # The image installs mlwatch in editable mode from there: the mount replaces the code.
        assert by_source["./include"] == copied_include


def test_warehouse_landing_and_reports_live_on_a_named_volume(compose):
    named = set(compose.get("volumes") or {})
    for name, service in airflow_services(compose).items():
        variables = env(service)
        for key in ("MLWATCH_LANDING", "MLWATCH_WAREHOUSE", "MLWATCH_REPORTS", "MLWATCH_CONFIG"):
            found = mount_of(service, variables[key])
            assert found, (name, key, variables[key])
            assert found[0] in named, (name, key, found)
    assert mount_of(compose["services"]["postgres"], "/var/lib/postgresql/data")[0] in named


def test_slack_comes_from_the_environment_and_no_token_is_in_the_files(compose):
    from mlwatch.config import embedded_config_text

    conn_id = yaml.safe_load(embedded_config_text())["slack"]["connection_id"]
    for name, service in airflow_services(compose).items():
        value = env(service)[f"AIRFLOW_CONN_{conn_id.upper()}"]
        assert re.fullmatch(r"\$\{[A-Z_]+(:?-)?\}", value), (name, value)
    for path in (COMPOSE_FILE, DOCKERFILE):
        assert not re.search(r"xox[abposr]-[0-9A-Za-z]+-", path.read_text()), path


def test_versions_agree_with_the_lock_and_python(compose, dockerfile):
    airflow = pin("apache-airflow")
    [base] = [i.split()[1] for i in dockerfile if i.upper().startswith("FROM")]
    image = airflow_services(compose)["airflow-scheduler"]["image"]
    assert image.rsplit(":", 1)[1].split("-")[0] == airflow, (image, airflow)
    if base.startswith("apache/airflow:"):
        tag = base.split(":", 1)[1]
        assert tag.split("-")[0] == airflow, (base, airflow)
        python = re.search(r"python(\d+\.\d+)", tag)
        assert python, f"{base}: name the Python version"
        python = python.group(1)
    else:
        match = re.fullmatch(r"python:(\d+\.\d+)[\w.-]*", base)
        assert match, base
        python = match.group(1)
    project = (REPO / "pyproject.toml").read_text()
    assert f'requires-python = ">={python},' in project
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}" == "3.11"


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy and subprocess.run([legacy, "version"], capture_output=True).returncode == 0:
        return [legacy]
    return None


def test_docker_compose_accepts_the_file(tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` (the compose plugin) nor `docker-compose` is installed here; "
                    "the YAML checks above still ran")
    out = subprocess.run([*command, "-f", str(COMPOSE_FILE), "config", "--format", "json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    import json

    resolved = json.loads(out.stdout)
    assert {"postgres", *AIRFLOW_SERVICES} <= set(resolved["services"])
    scheduler = resolved["services"]["airflow-scheduler"]
    assert scheduler["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    # With MLWATCH_SLACK_CONN unset, the connection is empty: Airflow treats it as absent.
    assert scheduler["environment"].get("AIRFLOW_CONN_SLACK_API_DEFAULT", "") == ""
