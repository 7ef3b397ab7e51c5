# The Claude container image: Claude Code, the `sidecar` dispatcher and the egress firewall tools.
#
#   docker build -t claude-sidecar .                                  # native installer (default)
#   docker build --build-arg CLAUDE_INSTALL=npm -t claude-sidecar .    # npm package instead
#   docker build --build-arg CLAUDE_INSTALL=none \
#                --build-arg BASE_IMAGE=sidecar-test/debian:bookworm . # offline (tests)
#
# Works with BuildKit and with the classic builder (no BuildKit-only syntax). The only network
# the build needs: the Debian mirror, PyPI and, for CLAUDE_INSTALL=native|npm, Claude Code's own.
ARG BASE_IMAGE=debian:12-slim

# -- stage 1: the wheel, built from this very source tree ------------------------------------
FROM ${BASE_IMAGE} AS wheel
# PEM certificates to trust on top of Debian's (a TLS-inspecting proxy between the build and
# PyPI); empty by default.
ARG EXTRA_CA_CERTS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/sidecar-extra.crt \
        && update-ca-certificates >/dev/null; fi
# hadolint ignore=DL3013
RUN python3 -m venv /build && /build/bin/pip install --quiet "hatchling>=1.21"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar_gen ./sidecar_gen
COPY templates ./templates
COPY schemas ./schemas
# The tree's sidecar_gen/_data is a symlink for editable installs; the wheel force-includes the
# real templates/ and schemas/ in its place.
RUN rm -rf sidecar_gen/_data \
    && /build/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /dist .

# -- stage 2: the image ------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG CLAUDE_INSTALL=native
ARG CLAUDE_UID=1000
ARG CLAUDE_GID=1000
ARG EXTRA_CA_CERTS=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# tini: PID 1 that forwards signals and reaps the forwarder and exec'd children. Like
# debian:12-slim, keep no docs, man pages, translations or downloaded packages.
# hadolint ignore=DL3008
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' >/etc/dpkg/dpkg.cfg.d/sidecar-slim \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        bash ca-certificates curl git procps tini \
        python3 python3-venv \
        iptables ipset iproute2 dnsmasq-base \
    && if [ "$CLAUDE_INSTALL" = npm ]; then \
        apt-get install -y --no-install-recommends nodejs npm; fi \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/sidecar-extra.crt \
        && update-ca-certificates >/dev/null; fi

# The package's dependencies first: a layer that survives changes of the code.
COPY pyproject.toml /tmp/sidecar-pyproject.toml
# hadolint ignore=DL3013
RUN python3 -m venv /opt/sidecar \
    && python3 -c 'import tomllib, sys; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        /tmp/sidecar-pyproject.toml >/tmp/sidecar-requirements.txt \
    && /opt/sidecar/bin/pip install --quiet -r /tmp/sidecar-requirements.txt \
    && rm /tmp/sidecar-pyproject.toml /tmp/sidecar-requirements.txt

# Claude Code itself: the real binary at /usr/local/bin/claude. Unpinned on purpose: the image
# is rebuilt to pick up Claude Code releases (the auto-updater cannot write /usr/local). npm:
# Node ships its own CA list, NODE_EXTRA_CA_CERTS adds the system's (and EXTRA_CA_CERTS).
# hadolint ignore=DL3016
RUN case "$CLAUDE_INSTALL" in \
      native) \
        export HOME=/tmp/claude-install \
        && curl -fsSL https://claude.ai/install.sh | bash \
        && install -m 0755 "$(readlink -f "$HOME/.local/bin/claude")" /usr/local/bin/claude \
        && rm -rf "$HOME" ;; \
      npm) \
        NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
            npm install -g --no-fund --no-audit @anthropic-ai/claude-code \
        && npm cache clean --force \
        && test -x /usr/local/bin/claude ;; \
      none) \
        echo "CLAUDE_INSTALL=none: Claude Code not installed (offline test image)" ;; \
      *) \
        echo "CLAUDE_INSTALL must be native, npm or none (got: $CLAUDE_INSTALL)" >&2; exit 1 ;; \
    esac

RUN groupadd --non-unique --gid "$CLAUDE_GID" claude \
    && useradd --non-unique --uid "$CLAUDE_UID" --gid "$CLAUDE_GID" --create-home \
        --home-dir /home/claude --shell /bin/bash claude \
    && install -d -o claude -g claude -m 0700 /home/claude/.claude \
    && useradd --system --gid nogroup --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin sidecar-dns \
    && install -d -m 0755 /run/sidecar /run/sidecar/firewall

COPY --from=wheel /dist /tmp/dist
# The entrypoint, the `claude` wrapper and the readiness check are rendered here, at build
# time, from the package's templates with this image's uid/gid and the ids it uses (so keep
# this the last step that adds files): root runs them, so they must never come from the
# workspace the agent can write.
RUN /opt/sidecar/bin/pip install --quiet --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && ln -s /opt/sidecar/bin/sidecar /usr/local/bin/sidecar \
    && install -d -m 0755 /opt/sidecar/wrappers \
    && /opt/sidecar/bin/python -I -c 'from sidecar_gen.imagefiles import install_image_files; install_image_files(uid=int("'"$CLAUDE_UID"'"), gid=int("'"$CLAUDE_GID"'"))' \
    && sidecar --version

ENV PATH=/opt/sidecar/wrappers:/usr/local/sidecar/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CLAUDE_CONFIG_DIR=/home/claude/.claude \
    DISABLE_AUTOUPDATER=1 \
    DOCKER_HOST=tcp://sidecar-gate:2375 \
    SIDECAR_WORKSPACE=/workspace \
    SIDECAR_CONFIG_DIR=/workspace/.sidecar \
    SIDECAR_POLICY_DIR=/run/sidecar/policy
LABEL dev.claude-sidecar.image="claude" \
      dev.claude-sidecar.claude-install="${CLAUDE_INSTALL}"
WORKDIR /workspace
ENTRYPOINT ["/usr/bin/tini", "-s", "-g", "--", "/usr/local/sbin/sidecar-entrypoint"]
CMD []
