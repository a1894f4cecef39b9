"""gunicorn in production (docker-compose.yml runs it behind nginx, deploy/nginx.conf).

Threaded workers: a client that sends its request slowly holds one thread until `timeout`, not a
whole worker, so a handful of slow clients cannot stall the portal. nginx in front buffers each
request before gunicorn sees it, which is the real protection; this is the second line.
"""

from __future__ import annotations

import os

worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A request (and a slow client's unfinished one) is given up after this many seconds.
timeout = 30
graceful_timeout = 30
keepalive = 5
accesslog = "-"
