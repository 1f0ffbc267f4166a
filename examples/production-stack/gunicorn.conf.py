"""gunicorn's settings for the `web` service (``gunicorn -c gunicorn.conf.py shop.app:app``).

A Python file, so the port comes from the environment mpsv3 gives the service. SIGHUP to the
master (what mpsv3 sends on a code change, ``signal_to: main``) starts new workers with the new
code, then stops the old ones gracefully.
"""

import os

bind = f"127.0.0.1:{os.environ['APP_PORT']}"
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = 10
timeout = 30
# gunicorn 25.1+ opens a control socket in $HOME by default: one path for every copy of the
# stack, left behind by a kill -9. mpsv3 is the control interface here.
control_socket_disable = True
