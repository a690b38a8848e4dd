"""gunicorn settings for ``gunicorn --paste accel.ini`` (the demo behind nginx-accel.conf).

``gunicorn --paste`` reads no ``[server:main]``; it reads this file from the current folder.
Same address as ``pserve accel.ini``: 127.0.0.1:9999, or ``$PYRAMID_NOTEBOOK_DEMO_PORT``.
"""
import os

bind = f"127.0.0.1:{os.environ.get('PYRAMID_NOTEBOOK_DEMO_PORT', '').strip() or '9999'}"
# In accel mode nginx relays every notebook byte: workers only answer short questions.
workers = 2
worker_class = "gthread"
threads = 8
# nginx on loopback is the only client; trust its X-Forwarded-Proto/-For.
forwarded_allow_ips = "127.0.0.1"
# gunicorn 24+ opens a control socket at ~/.gunicorn/gunicorn.ctl, one path for every gunicorn
# of this user; the demo needs none (and tests run several at once).
control_socket_disable = True
