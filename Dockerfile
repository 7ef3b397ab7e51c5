# The Claude container image: Claude Code, the `sidecar` dispatcher and the egress firewall tools.
#
#   docker build -t claude-sidecar .                                  # native installer (default)
#   docker build --build-arg CLAUDE_INSTALL=npm -t claude-sidecar .    # npm package instead
#   docker build --build-arg CLAUDE_INSTALL=none \
#                --build-arg BASE_IMAGE=sidecar-test/debian:bookworm . # offline (tests)
#
# Works with BuildKit and with the classic builder (no BuildKit-only syntax). The only network
# the build needs: the Debian mirror, PyPI and, for CLAUDE_INSTALL=native|npm, Claude Code's own
# download (native: claude.ai; npm: the npm registry).
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

# -- stage 2: Claude Code's native binary, and nothing else ------------------------------------
# Whatever installs it (Anthropic's installer, or Node and npm) stays in this stage: the image
# gets /out/claude only, a self-contained executable that needs no Node. CLAUDE_INSTALL=none
# leaves /out empty. Nothing here depends on the source tree, so the build cache keeps it.
FROM ${BASE_IMAGE} AS claude-code
ARG CLAUDE_INSTALL=native
ARG EXTRA_CA_CERTS=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008,SC2086
RUN case "$CLAUDE_INSTALL" in \
      native) tools="ca-certificates curl" ;; \
      npm) tools="ca-certificates nodejs npm" ;; \
      none) tools="" ;; \
      *) echo "CLAUDE_INSTALL must be native, npm or none (got: $CLAUDE_INSTALL)" >&2; exit 1 ;; \
    esac \
    && if [ -n "$tools" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends $tools \
        && rm -rf /var/lib/apt/lists/* \
        && if [ -n "$EXTRA_CA_CERTS" ]; then \
            printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/sidecar-extra.crt \
            && update-ca-certificates >/dev/null; fi; fi
# Empty: the installer's default (native) or the npm registry's `latest`; or a version number.
ARG CLAUDE_VERSION=""
# npm: the Node that runs npm and the package's postinstall here (Debian 12's Node 18 is older
# than Claude Code's `engines`); from the npm registry's `node` package; build time only.
ARG BUILD_NODE_VERSION=22
# Unpinned by default on purpose: the image is rebuilt to pick up Claude Code releases (the
# auto-updater is off and could not write /usr/local anyway). npm: the postinstall script
# copies the platform package's native binary (@anthropic-ai/claude-code-linux-x64, ...) over
# bin/claude.exe; --engine-strict turns a Node too old for Claude Code into a build error
# instead of a warning. Node ships its own CA list: NODE_EXTRA_CA_CERTS adds the system's.
# hadolint ignore=DL3016
RUN install -d -m 0755 /out \
    && case "$CLAUDE_INSTALL" in \
      native) \
        export HOME=/tmp/claude-install \
        && curl -fsSL https://claude.ai/install.sh | bash -s -- ${CLAUDE_VERSION:+"$CLAUDE_VERSION"} \
        && install -m 0755 "$(readlink -f "$HOME/.local/bin/claude")" /out/claude ;; \
      npm) \
        export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_fund=false \
            npm_config_audit=false npm_config_update_notifier=false \
        && npm install -g "node@$BUILD_NODE_VERSION" \
        && hash -r \
        && npm install -g --engine-strict "@anthropic-ai/claude-code${CLAUDE_VERSION:+@$CLAUDE_VERSION}" \
        && install -m 0755 "$(npm root -g)/@anthropic-ai/claude-code/bin/claude.exe" /out/claude ;; \
    esac \
    && if [ -e /out/claude ]; then /out/claude --version; fi

# -- stage 3: the image ------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# Build arguments are declared where they are first used: the classic builder keys a layer's
# cache on the arguments declared before it, so variants share every layer they can. And each
# stage starts with an instruction of its own: when two stages start alike, the classic builder
# may take the other stage's first layer and miss the cache for everything after it.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG EXTRA_CA_CERTS=""
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
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/sidecar-extra.crt \
        && update-ca-certificates >/dev/null; fi

# The package's dependencies first: a layer that survives changes of the code. Not those
# pyproject.toml lists under [tool.claude-sidecar] host-only-dependencies (the docker SDK: only
# host-side commands use it), so they never reach the runtime the agent's commands share. The
# venv gets no pip or setuptools (25 MB nothing at run time needs): Debian's pip wheel installs.
COPY pyproject.toml /tmp/sidecar-pyproject.toml
# hadolint ignore=DL3013
RUN python3 -m venv --without-pip /opt/sidecar \
    && python3 -c 'import re, sys, tomllib; key = lambda r: re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r)[0]).lower(); p = tomllib.load(open(sys.argv[1], "rb")); host = {key(n) for n in p["tool"]["claude-sidecar"]["host-only-dependencies"]}; print("\n".join(r for r in p["project"]["dependencies"] if key(r) not in host))' \
        /tmp/sidecar-pyproject.toml >/tmp/sidecar-requirements.txt \
    && set -- /usr/share/python-wheels/pip-*.whl \
    && /opt/sidecar/bin/python "$1/pip" install --quiet -r /tmp/sidecar-requirements.txt \
    && rm /tmp/sidecar-pyproject.toml /tmp/sidecar-requirements.txt

# Claude Code's binary at /usr/local/bin/claude (nothing with CLAUDE_INSTALL=none).
COPY --from=claude-code /out/ /usr/local/bin/

ARG CLAUDE_UID=1000
ARG CLAUDE_GID=1000
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
RUN set -- /usr/share/python-wheels/pip-*.whl \
    && /opt/sidecar/bin/python "$1/pip" install --quiet --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && ln -s /opt/sidecar/bin/sidecar /usr/local/bin/sidecar \
    && install -d -m 0755 /opt/sidecar/wrappers \
    && /opt/sidecar/bin/python -I -c 'from sidecar_gen.image.files import install_image_files; install_image_files(uid=int("'"$CLAUDE_UID"'"), gid=int("'"$CLAUDE_GID"'"))' \
    && sidecar --version

# Claude Code belongs to the image: it neither updates itself (DISABLE_AUTOUPDATER) nor tells
# the user to run `claude install`, which would put a second copy in the home folder
# (DISABLE_INSTALLATION_CHECKS); rebuilding the image updates it.
ENV PATH=/opt/sidecar/wrappers:/usr/local/sidecar/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CLAUDE_CONFIG_DIR=/home/claude/.claude \
    DISABLE_AUTOUPDATER=1 \
    DISABLE_INSTALLATION_CHECKS=1 \
    DOCKER_HOST=tcp://sidecar-gate:2375 \
    SIDECAR_WORKSPACE=/workspace \
    SIDECAR_CONFIG_DIR=/workspace/.sidecar \
    SIDECAR_POLICY_DIR=/run/sidecar/policy
ARG CLAUDE_INSTALL=native
LABEL dev.claude-sidecar.image="claude" \
      dev.claude-sidecar.claude-install="${CLAUDE_INSTALL}"
WORKDIR /workspace
ENTRYPOINT ["/usr/bin/tini", "-s", "-g", "--", "/usr/local/sbin/sidecar-entrypoint"]
CMD []
