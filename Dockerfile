# The orchestrator as a container: a slim Python base, a non-root user, the console
# script as the entry point, the state and the reports on a volume (/data).
#
#   docker build -t ecs-reinstall-orchestrator .
#   docker run --rm -v "$PWD/campaign:/data" -e OS_CLOUD=otc \
#       -v "$HOME/.config/openstack:/home/orchestrator/.config/openstack:ro" \
#       ecs-reinstall-orchestrator run /data/fleet.csv --window 02:00-05:00 --tz Europe/Berlin
#
# Build stage: the wheels, so the image carries no compiler and no source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY orchestrator ./orchestrator
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[pg]'

FROM python:3.11-slim
# A fixed, unprivileged user: the state file is created 0600 for it.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin orchestrator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'ecs-reinstall-orchestrator[pg]' \
    && rm -rf /wheels
USER orchestrator
# State files, logs and reports are written below the working directory by default.
WORKDIR /data
VOLUME ["/data"]
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["orchestrator"]
CMD ["--help"]
