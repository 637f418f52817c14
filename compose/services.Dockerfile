# The lab's Python services (api, gateway, ...) in one image; the compose file picks
# the module per container: python -m services.api --host 0.0.0.0 --port 8000 ...
# Build from the repository root:
#   docker build -f compose/services.Dockerfile -t lab-services .
# Without a registry: make images-offline (BASE_IMAGE=lab-base:bookworm, built by
# scripts/build-base-image.sh from the Debian archive).
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

# redis-server serves the labs that need a Redis part (the offline base has it already).
RUN set -eu; \
    if ! command -v redis-server >/dev/null; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server \
        && rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin lab

COPY compose/services-requirements.txt /opt/lab/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
        -r /opt/lab/requirements.txt

COPY services /opt/lab/services
WORKDIR /opt/lab
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8000
# bash's /dev/tcp: no curl in a minimal image, and far cheaper than starting Python.
HEALTHCHECK --interval=5s --timeout=2s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
CMD ["python", "-m", "services.api", "--host", "0.0.0.0", "--port", "8000"]
