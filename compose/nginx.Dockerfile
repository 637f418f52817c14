# nginx for the compose topology, running as an unprivileged user on port 8080.
# The engine renders compose/nginx/nginx.conf.j2 (the template the local topology
# uses) per run and mounts it at /var/lib/lab-nginx/nginx.conf.
#   docker build -f compose/nginx.Dockerfile -t lab-nginx .
# Without a registry: make images-offline (BASE_IMAGE=lab-base:bookworm).
ARG BASE_IMAGE=nginx:1.22
FROM ${BASE_IMAGE}

RUN set -eu; \
    useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin lab; \
    mkdir -p /var/lib/lab-nginx/temp; \
    chown -R lab:lab /var/lib/lab-nginx

COPY --chown=10001:10001 compose/nginx/default.conf /var/lib/lab-nginx/nginx.conf
USER 10001:10001
EXPOSE 8080
# A TCP connect only: a request to / would go through the proxy and touch the
# upstream keep-alive pool that the labs measure.
HEALTHCHECK --interval=5s --timeout=2s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
# Bypass the official image's entrypoint scripts (they expect root).
ENTRYPOINT []
CMD ["nginx", "-p", "/var/lib/lab-nginx", "-e", "/var/lib/lab-nginx/error.log", \
     "-c", "/var/lib/lab-nginx/nginx.conf", "-g", "daemon off;"]
