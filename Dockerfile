# codearts-stage-monitor: `docker build -t codearts-stage-monitor:0.1.0 .`
#
# Two stages: the first builds a virtualenv with the package and its
# dependencies (all of them ship binary wheels: no compiler is needed, and none is
# in the final image); the second copies that virtualenv onto a clean slim Python.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/stage-monitor
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN /opt/stage-monitor/bin/pip install --no-cache-dir --no-compile . \
    && /opt/stage-monitor/bin/python -m compileall -q /opt/stage-monitor/lib \
    && /opt/stage-monitor/bin/stage-monitor --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="codearts-stage-monitor" \
      org.opencontainers.image.description="Prometheus exporter for Huawei Cloud CodeArts Build stage timings"
# A fixed uid/gid: the Kubernetes manifests run as 10001 with fsGroup 10001.
RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/stage-monitor \
    && chown monitor:monitor /var/lib/stage-monitor
COPY --from=build /opt/stage-monitor /opt/stage-monitor
ENV PATH=/opt/stage-monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_HOST=0.0.0.0 \
    MONITOR_PORT=9630 \
    MONITOR_LOG_FORMAT=json \
    MONITOR_STATE_PATH=/var/lib/stage-monitor/monitor.db
# The state file (MONITOR_STATE_PATH) lives here; mount a volume to keep it.
VOLUME ["/var/lib/stage-monitor"]
WORKDIR /var/lib/stage-monitor
USER 10001:10001
EXPOSE 9630
# `stage-monitor run` by default; `docker run IMAGE check-config` etc. also work.
ENTRYPOINT ["stage-monitor"]
CMD ["run"]
