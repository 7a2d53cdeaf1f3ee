# The image every Airflow service of docker-compose.yml runs: Airflow, dbt, DuckDB and
# the mlwatch library, installed at build time from the lock (requirements.txt).
FROM python:3.11-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    DO_NOT_TRACK=1

RUN useradd --create-home --uid 50000 airflow \
 && mkdir -p /opt/airflow/logs /opt/mlwatch /data \
 && chown -R airflow /opt/airflow /opt/mlwatch /data

COPY requirements.txt /opt/mlwatch/requirements.txt
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv pip install --system --no-cache -r /opt/mlwatch/requirements.txt

COPY pyproject.toml README.md /opt/mlwatch/
COPY include /opt/mlwatch/include
COPY dbt /opt/mlwatch/dbt
RUN uv pip install --system --no-cache --no-deps -e /opt/mlwatch

USER airflow
WORKDIR /opt/airflow
