# ml-lab-mcp: the MCP server in a container, stdio by default.
#   docker build -t ml-lab-mcp .
#   docker run -i --rm -v "$PWD:/data/work" ml-lab-mcp                 # stdio (note -i)
#   docker run --rm -p 8765:8765 -e ML_LAB_AUTH_TOKEN=... ml-lab-mcp --transport streamable-http --host 0.0.0.0
# Build arguments:
#   BASE_IMAGE        a Debian-based image with python3 and python3-venv (default: python:3.11-slim-bookworm)
#   TORCH_VERSION     torch release to install (default 2.13.0+cpu)
#   TORCH_INDEX_URL   where torch comes from (default: PyTorch's CPU index; e.g. .../whl/cu128 with 2.13.0+cu128)
#   EXTRAS            optional extras of the project, e.g. "[ray]" for --jobs ray (deploy/compose.yaml)
# Wheels placed in ./wheels/ are preferred (e.g. a torch wheel already on disk). A CA bundle for a
# TLS-intercepting proxy can be passed as a build secret: --secret id=cacert,src=/path/to/ca-bundle.crt

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/sh", "-eu", "-c"]
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The glob makes ./wheels optional: when it is absent only .dockerignore lands in /tmp/wheels.
# (.dockerignore, not pyproject.toml, so that editing the project keeps this torch layer cached.)
COPY .dockerignore wheel[s] /tmp/wheels/
# torch first, from its own index (CPU build by default); its dependencies come from PyPI.
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    pip install --find-links /tmp/wheels --index-url "${TORCH_INDEX_URL}" \
        --extra-index-url https://pypi.org/simple "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.m[d] LICENS[E] ./
COPY tools ./tools
COPY mcp_server ./mcp_server
# The project itself (".${EXTRAS}", e.g. ".[ray]") is a local path, not a package to pin: hadolint reads it as one.
# hadolint ignore=DL3013
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    if [ ! -f README.md ]; then echo "# ml-lab-mcp" > README.md; fi; \
    pip install --find-links /tmp/wheels ".${EXTRAS}" \
    && python -c "import torch, mcp_server.server; print('torch', torch.__version__)"

FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/sh", "-eu", "-c"]
# tini is PID 1: it forwards SIGTERM to the server and reaps children, so `docker stop` ends it at once.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin lab \
    && mkdir -p /data/outputs \
    && chown -R lab:lab /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    MPLCONFIGDIR=/home/lab/.config/matplotlib \
    ML_LAB_OUTPUT_DIR=/data/outputs \
    ML_LAB_ALLOWED_DIRS=/data
# Files the tools write (and images they may read: mount your folder under /data).
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
# matplotlib's font cache, built once here rather than at the first plot of every container.
RUN python -c "import matplotlib.font_manager"
EXPOSE 8765
ENTRYPOINT ["/usr/bin/tini", "--", "ml-lab-mcp"]
CMD ["--transport", "stdio"]
