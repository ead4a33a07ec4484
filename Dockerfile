# The images of the fleet, two build targets of one file (see docker-compose.yml):
#
#   cpu (the default, last stage): CPU workers, Flower, the exporter and the producers. Python 3.11 (the project's
#       floor, pyproject requires-python) on Debian slim; every dependency ships a manylinux wheel, so no compiler.
#   gpu: the GPU lifecycle worker. NVIDIA's CUDA runtime image (the driver comes from the host through the NVIDIA
#       container toolkit), Ubuntu 24.04's Python 3.12, the project and CuPy for CUDA 12.
#
#   docker build --target cpu -t simfleet:local .
#   docker build --target gpu -t simfleet:local-gpu .
#
# Both install the project with ops/constraints.txt as pip constraints: every runtime dependency, transitive ones
# included, at the version the tests ran with (regenerate it with ops/pin_constraints.py when pyproject changes).
# Both run as the unprivileged user simfleet (uid and gid 10001) and own /checkpoints, the mount point of the
# shared checkpoint volume: Docker gives an empty named volume the owner of the image's folder, so the worker can
# write it without an init step.

# ---------------------------------------------------------------------------------------------------------- gpu
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04 AS gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/simfleet/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/simfleet

WORKDIR /src
COPY ops/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY worker/ worker/
COPY producer/ producer/
# PIP_CONSTRAINT also reaches the isolated build of the project itself (setuptools), which -c would not.
RUN PIP_CONSTRAINT=/tmp/constraints.txt pip install -c /tmp/constraints.txt '.[s3]' cupy-cuda12x \
    && rm -rf /src/*
# The lifecycle kernels' numba cache, filled at build time (as in the cpu stage).
ENV NUMBA_CACHE_DIR=/opt/simfleet/numba-cache
RUN python -m simfleet.worker.lifecycle.backends.numba_backend --warm \
    && chown -R 10001:10001 /opt/simfleet/numba-cache

WORKDIR /app
COPY config/ /app/config/
# Ubuntu's image has a user of uid 1000 (ubuntu); ours takes the same 10001 as the cpu image, so volumes and
# Kubernetes' runAsUser agree between the two.
RUN groupadd --gid 10001 simfleet \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin simfleet \
    && mkdir -p /app/runs /checkpoints \
    && chown simfleet:simfleet /app/runs /checkpoints
USER 10001:10001
# The GPU worker's backend unless a job names one; SIMFLEET_GPU_WORKER__BACKEND=numpy runs it without CuPy.
ENV SIMFLEET_GPU_WORKER__BACKEND=cupy
CMD ["simfleet", "--help"]

# ---------------------------------------------------------------------------------------------------------- cpu
FROM python:3.11-slim AS cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project as a regular (non-editable) package from a throw-away source folder, so /app holds only what
# runs need: the settings file and the scenarios under config/, and a writable runs/ folder.
WORKDIR /src
COPY ops/constraints.txt /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY worker/ worker/
COPY producer/ producer/
RUN PIP_CONSTRAINT=/tmp/constraints.txt pip install -c /tmp/constraints.txt '.[s3]' \
    && rm -rf /src/*

# numba compiles the DES kernel and the lifecycle kernels here, once, into the image's cache: a worker then loads
# them in under a second instead of compiling them at every start. The cache stays writable by the image's user,
# for a host whose CPU differs from the build machine's (numba then compiles again, once, for that CPU).
ENV NUMBA_CACHE_DIR=/opt/simfleet/numba-cache
RUN python -m simfleet.worker.des.compiled --warm \
    && python -m simfleet.worker.lifecycle.backends.numba_backend --warm \
    && chown -R 10001:10001 /opt/simfleet/numba-cache

WORKDIR /app
COPY config/ /app/config/

# Never run workers as root: a task runs whatever a message asks of it, so it gets no more rights than it needs.
RUN groupadd --gid 10001 simfleet \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin simfleet \
    && mkdir -p /app/runs /checkpoints \
    && chown simfleet:simfleet /app/runs /checkpoints
USER 10001:10001

# Services override this (docker-compose.yml); alone, the image says what it can do.
CMD ["simfleet", "--help"]
