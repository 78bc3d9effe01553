# botkit webhook service. .ci/run repeats these steps in a venv (scripts/check-image), since CI has no Docker engine.
# Your own bot: put its module in bots/ (and its own dependencies, if any, in requirements.txt),
# then `docker build -t mybot .` and `docker run -e BOTKIT_BOT=bots.mybot ...` (README: Deploying).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BOTKIT_BOT=bots.clinic \
    BOTKIT_DATABASE=/data/botkit.db \
    PORT=8000
# a log pipeline reads JSON lines (docs/logging.md); BOTKIT_LOG_FORMAT=text for a terminal
ENV BOTKIT_LOG_FORMAT=json

WORKDIR /app
# (requirements.tx[t]: your bot's own dependencies when the file exists, nothing otherwise)
COPY pyproject.toml README.md constraints.txt requirements.tx[t] ./
COPY botkit ./botkit
# with the postgres extra (asyncpg): BOTKIT_DATABASE may name a PostgreSQL database; every
# package at the version constraints.txt pins (the versions CI tested)
RUN pip install -c constraints.txt ".[postgres]"
# your bot's own dependencies, if it has any: a requirements.txt beside this file
RUN if [ -f requirements.txt ]; then pip install -c constraints.txt -r requirements.txt; fi
COPY bots ./bots

RUN useradd --system --uid 10001 --home-dir /app botkit \
    && mkdir -p /data && chown botkit /data
USER botkit
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/healthz', timeout=2)"

# Configured from the environment: GOSENDAPI_API_KEY, GOSENDAPI_WEBHOOK_SECRET (required here),
# GOSENDAPI_PHONE_NUMBER_ID, GOSENDAPI_BASE_URL, BOTKIT_DATABASE (a file in /data, or
# postgresql://... for several replicas), BOTKIT_DATABASE_POOL, BOTKIT_API_TOKEN.
CMD ["sh", "-c", "exec botkit run \"$BOTKIT_BOT\" --host 0.0.0.0 --port \"$PORT\" --require-provider"]
