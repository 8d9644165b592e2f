# One image for the producer, streaming job, trainer and MLflow server.
# Its install steps are the Makefile targets CI runs (`make jars`, `make venv`).

# --- the JVM jars, fetched with Maven (not needed at run time) ---
FROM python:3.11-slim-bookworm AS jars
RUN apt-get update \
 && apt-get install -y --no-install-recommends make maven openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY Makefile ./
COPY jvm/ jvm/
RUN make jars

# --- the runtime ---
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends make openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=jars /app/jars/ /app/jars/
COPY pyproject.toml README.md Makefile ./
COPY jvm/ jvm/
COPY pipeline_runtime/ pipeline_runtime/
COPY pipeline/ pipeline/
COPY producers/ producers/
COPY streaming/ streaming/
COPY training/ training/
# jars/ came complete from the first stage, so only the venv is built here (without the dev tools), and the
# Spark driver's class-data archive (a faster start of every Spark service).
RUN make venv VENV=/opt/venv PIP_EXTRAS= \
 && make class-archive VENV=/opt/venv \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data/tables /data/checkpoints /data/logs /data/state /data/sandbox /mlflow \
 && chown -R app:app /data /mlflow
ENV PATH=/opt/venv/bin:$PATH \
    DATA_DIR=/data \
    JARS_DIR=/app/jars \
    PYTHONUNBUFFERED=1
USER app
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "pipeline_runtime", "--help"]
