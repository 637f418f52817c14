# Locust for `--locust-workers N` on the compose topology: each worker runs in a
# container of this image (labs/engine/load/distributed.py, WorkerContainers). The
# repository is mounted at run time, so the image holds only Python and the packages
# the locustfiles import. LOCUST_VERSION is the host's: master and workers must agree.
#   docker build -f compose/locust.Dockerfile --build-arg LOCUST_VERSION=2.47.0 -t lab-locust .
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}
ARG LOCUST_VERSION
COPY compose/locust-requirements.txt /opt/lab/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --quiet \
        -r /opt/lab/requirements.txt ${LOCUST_VERSION:+"locust==${LOCUST_VERSION}"}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
CMD ["python", "-m", "locust", "--version"]
