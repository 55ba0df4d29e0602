# Production image: the same command as the Procfile, as a non-root user.
#   docker build -t ffb-api .
#   docker run --env-file .env.production -p 8000:8000 ffb-api
# Settings come from the environment (see .env.example); .env is never copied in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENV_FILE="" \
    PORT=8000

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first, so code changes reuse this layer. Runtime requirements only.
COPY requirements.txt .
RUN pip install -r requirements.txt

# Code stays owned by root: the app user can read it, not change it. The project itself is
# installed (no dependencies of its own) so that scripts run by path, e.g.
# `python scripts/bootstrap_schema.py`, import the app's modules.
COPY . .
RUN pip install --no-deps -e .
USER app

EXPOSE 8000
# slim has no curl; urlopen raises (exit 1) on refusal, timeout or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "main:create_app()"]
