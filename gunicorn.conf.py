"""gunicorn settings for `gunicorn -c gunicorn.conf.py "main:create_app()"` (Procfile, Dockerfile).

Platform variables only: PORT (Heroku/Render/Railway set it), HOST, WEB_CONCURRENCY
(workers; default 2 = this 2-core machine's sweet spot), HEADER_TIMEOUT_SECONDS (10: a
connection must send each request's headers within it, else it is closed),
WORKER_CONNECTIONS (1000 per worker; past it new requests get 503). Application settings
are read by config.py; the client address behind proxies is TRUSTED_PROXY_HOPS there
(uvicorn's own X-Forwarded-For handling, FORWARDED_ALLOW_IPS, is switched off).
"""

import os

import server

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or "2")
# uvicorn's worker without the Server header and X-Forwarded-* handling, with a header timeout
worker_class = server.worker_class(float(os.environ.get("HEADER_TIMEOUT_SECONDS") or "10"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS") or "1000")
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


# /metrics under several workers: prometheus_client's multiprocess mode keeps each worker's
# values in files under PROMETHEUS_MULTIPROC_DIR and sums them on every scrape. A fresh
# directory per server start (values from a previous run, or from another server on the
# machine, must never be added in), removed when the server stops. Set here, in the master,
# before any worker is forked and imports prometheus_client.
def on_starting(server):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ffb-metrics-")


def child_exit(server, worker):
    # a dead worker's live gauges (bcrypt queue length) no longer count
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_exit(server):
    import shutil

    shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)
