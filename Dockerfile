# One image for both components: `qstash-operator operator` and `qstash-operator webhook` (the
# chart passes the subcommand as the container's args).
#
#   docker build -t qstash-operator:0.1.0 .
#   kind load docker-image qstash-operator:0.1.0      # then helm install (see the README)
#
# Two stages: the builder installs the project and its dependencies into a virtual environment;
# the final stage copies only that venv onto the same slim Python base, so no compiler, pip cache
# or source tree ships. The process writes nothing at run time (bytecode is compiled at build
# time), so the chart runs it with a read-only root filesystem, as a numeric non-root user.
# tests/packaging/test_dockerfile.py checks these properties statically; test_image.py builds the
# image with podman (devstack/image.sh) and checks them on the image itself.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the package build reads; .dockerignore keeps everything else out of the context.
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY webhook ./webhook
COPY qstash-server ./qstash-server
# A regular (not editable) install: the venv must not point back into /src. pip compiles the
# installed modules to bytecode, which is what lets the final image run read-only.
RUN /opt/venv/bin/pip install . \
 && /opt/venv/bin/qstash-operator --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="qstash-operator" \
      org.opencontainers.image.description="CronWorkflows on Upstash QStash schedules or native CronJobs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# A numeric uid/gid, so `runAsNonRoot` can verify it without a passwd entry.
USER 10001:10001
# 8080: the webhook (deliveries, /api/cron, probes, metrics); 8081: the operator's probes and metrics.
EXPOSE 8080 8081
ENTRYPOINT ["qstash-operator"]
CMD ["--help"]
