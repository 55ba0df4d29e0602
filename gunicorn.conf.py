"""gunicorn settings for `gunicorn -c gunicorn.conf.py "main:create_app()"` (Procfile, Dockerfile).

Platform variables only: PORT (Heroku/Render/Railway set it), HOST, WEB_CONCURRENCY
(workers; default 2 = this 2-core machine's sweet spot), FORWARDED_ALLOW_IPS (proxies whose
X-Forwarded-For is trusted, so rate limits see the real client). Application settings are
read by config.py.
"""
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or "2")
worker_class = "uvicorn.workers.UvicornWorker"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
timeout = 60
graceful_timeout = 30
keepalive = 5
# One JSON line per request comes from the app's own access log (with the request id and
# user id); gunicorn's would duplicate it without them.
accesslog = None
errorlog = "-"
# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/), shared by
# every master on the machine; nothing here uses it.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
