# syntax=docker/dockerfile:1
# alura-bot image: multi-stage, non-root, read-only-root friendly, HEALTHCHECK on /healthz.
#
#   docker build -t alura-bot:local .
#   docker run --read-only --tmpfs /tmp -v alura-bot-state:/var/lib/alura-bot \
#     -p 127.0.0.1:9108:9108 alura-bot:local            # paper mode, no key needed
# Live trading: a docker secret at /run/secrets/alura_private_key, a config with mode = "live"
# and `run --live`. See deploy/README.md and compose.yaml. Linted by hadolint in .ci/deploy-checks.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for the bot and every dependency, then a venv installed from them only ---
FROM ${PYTHON_IMAGE} AS build

# A compiler only for dependencies without a wheel for this platform; it never reaches the final
# image. Versions are not pinned: the slim base tracks Debian security updates, and a pinned
# version disappears from the archive when the next one lands (the build would then fail).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel needs (.dockerignore keeps keys, journals, .git and tests out anyway).
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY strategies/ strategies/

# Dependency versions come from pyproject.toml's ranges, resolved here once; the venv is then
# installed with --no-index from these wheels only, and pip byte-compiles it here (a read-only
# root filesystem could not take .pyc files later). The runtime stage copies the venv.
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/alura-bot \
    && /opt/alura-bot/bin/pip install --no-index --find-links /wheels /wheels/alura_bot-*.whl

# --- runtime: the venv on the same base, no compiler, no pip cache, no wheels --------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="alura-bot" \
      org.opencontainers.image.description="Trading daemon for the Alura Trading backend"

# A fixed numeric UID/GID (not root, not in any host range by default) so volumes and secrets
# can be chown'ed to it from the host: `chown 10001:10001 secrets/alura_private_key`.
ARG UID=10001
ARG GID=10001
RUN groupadd --system --gid "${GID}" alura \
    && useradd --system --uid "${UID}" --gid alura --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin alura \
    && mkdir -p /var/lib/alura-bot /etc/alura-bot \
    && chown alura:alura /var/lib/alura-bot \
    && chmod 0700 /var/lib/alura-bot

COPY --from=build /opt/alura-bot /opt/alura-bot

# The journal goes to the state volume; metrics listen on all interfaces *inside* the container
# so Prometheus (another container) and `-p 127.0.0.1:9108:9108` can reach them — the host side
# stays loopback unless you publish it otherwise. JSON logs for `docker logs`. One BLAS thread:
# numpy would start one per host CPU (against pids_limit) for vectors of a few hundred candles.
ENV PATH=/opt/alura-bot/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALURA_BOT_JOURNAL_PATH=/var/lib/alura-bot/journal.sqlite \
    ALURA_BOT_METRICS_HOST=0.0.0.0 \
    ALURA_BOT_METRICS_PORT=9108 \
    ALURA_BOT_LOG_FORMAT=json \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1

VOLUME ["/var/lib/alura-bot"]
WORKDIR /var/lib/alura-bot
USER ${UID}:${GID}
EXPOSE 9108

# Python's stdlib, not curl (not in the slim image): exit 1 unless /healthz answers 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ALURA_BOT_METRICS_PORT', '9108'), timeout=4)"]

# SIGTERM: the daemon stops scheduling, finishes the in-flight request and exits 0 within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["alura-bot"]
# Paper mode unless the config says mode = "live" AND the command adds --live.
CMD ["run"]
