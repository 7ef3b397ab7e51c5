# The Claude container image. Minimal for now: the render/image issue fills it in
# (Claude Code install, the non-root user, the entrypoint and the firewall tools).
ARG BASE_IMAGE=debian:12-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY . /src
RUN python3 -m venv /opt/sidecar \
    && /opt/sidecar/bin/pip install --no-cache-dir /src \
    && ln -s /opt/sidecar/bin/sidecar /usr/local/bin/sidecar \
    && rm -rf /src

CMD ["sidecar", "--help"]
