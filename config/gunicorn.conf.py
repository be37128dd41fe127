"""gunicorn settings: `gunicorn -c config/gunicorn.conf.py config.wsgi` in a checkout.

The wheel ships this file inside the config package; docs/operations.md shows how an installed
Keyvault finds it.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
# gunicorn's threaded worker, answering the API's oversized requests (414, 431) in JSON. A
# long-poll (GET /api/v1/events?wait=…) holds a thread for up to 30 s while it waits; with
# the sync worker each one would hold a whole process, and a few would stop every retrieval.
# Threads make a parked request cost one idle thread (and no database connection), and idle
# kept-alive connections cost none: they wait in the worker's poller. A worker parks at most
# KEYVAULT_EVENTS_MAX_WAITERS polls (more are answered at once), so threads beyond that many
# are always left for retrievals, however the workers share the parked polls out
# (docs/operations.md).
worker_class = "config.gunicorn_worker.JsonApiErrorsThreadWorker"
RETRIEVAL_THREADS = 32
threads = int(
    os.environ.get(
        "GUNICORN_THREADS",
        int(os.environ.get("KEYVAULT_EVENTS_MAX_WAITERS", 100)) + RETRIEVAL_THREADS,
    )
)
# A hundred-odd threads must not mean as many database connections per worker: the workers'
# threads share a pool of this many (config/settings.py), read when each worker loads the app.
# Parked long-polls hold none; 8 is more than one core keeps busy.
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "8")
# Keep connections open between a proxy's requests; the proxy reuses them.
keepalive = 30
graceful_timeout = 30
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# Invitation and password-reset tokens in request paths are masked in that log.
logger_class = "config.gunicorn_logging.RedactingLogger"


def worker_exit(server, worker):
    # A worker stopping cleanly writes its pending usage counts before it goes.
    from keyvault.usage import recorder

    recorder.stop()
