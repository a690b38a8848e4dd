"""The sites the benchmark measures: the bench app (bench/app.py) under waitress, uWSGI or
uvicorn, and in nginx accel mode behind the shipped nginx-accel.conf."""
import os
import subprocess
import time

import requests

from bench.common import PYTHON, ROOT, UWSGI, answers, free_port, wait_until
from pyramid_notebook.core.process import terminate_daemon


class Site:
    """The bench app (bench/app.py) under waitress or uWSGI, in its own process."""

    def __init__(self, kind, workdir):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = os.path.join(workdir, f"notebooks-{kind}")
        os.makedirs(self.folder, exist_ok=True)
        self.log = open(os.path.join(workdir, f"{kind}.log"), "wb")
        if kind in ("waitress", "accel"):
            accel = "/_pyramid_notebook/" if kind == "accel" else ""
            code = ("import sys, waitress; sys.path.insert(0, %r); from bench.app import make_app; "
                    "waitress.serve(make_app(%r, accel_redirect=%r), host='127.0.0.1', port=%d, threads=32, "
                    "_quiet=True)" % (ROOT, self.folder, accel, self.port))
            cmd = [PYTHON, "-c", code]
        elif kind == "uvicorn":
            # One uvicorn worker: HTTP through a2wsgi's thread pool, websockets on the event loop.
            code = ("import sys, uvicorn; sys.path.insert(0, %r); from bench.app import asgi_application; "
                    "uvicorn.run(asgi_application(%r), host='127.0.0.1', port=%d, log_level='warning', "
                    "access_log=False)" % (ROOT, self.folder, self.port))
            cmd = [PYTHON, "-c", code]
        else:
            wsgi = os.path.join(workdir, "bench_wsgi.py")
            with open(wsgi, "w") as f:
                f.write(f"import sys\nsys.path.insert(0, {ROOT!r})\nfrom bench.app import uwsgi_application\n"
                        "application = uwsgi_application()\n")
            # The worker model of the shipped uwsgi.ini.
            cmd = [UWSGI, "--http11-socket", f"127.0.0.1:{self.port}", "--master", "--processes", "2",
                   "--threads", "100", "--enable-threads", "--thunder-lock", "--lazy-apps", "--die-on-term",
                   "--need-app", "--socket-timeout", "5", "--disable-logging", "--wsgi-file", wsgi,
                   "--env", f"BENCH_NOTEBOOK_FOLDER={self.folder}"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        wait_until(lambda: self.proc.poll() is not None or answers(self.url + "/shell"), 60)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{kind} did not start; see {self.log.name}")
        # A site that has been up for a few seconds: its fork server has imported Jupyter.
        from pyramid_notebook.backends.local.manager import NotebookManager

        manager = NotebookManager(self.folder, fork_server=True)
        if kind == "waitress":
            manager.start_fork_server()
            manager.fork_server.wait_until_ready(timeout=120)

        self.has_floor = True

    def session(self, user):
        s = requests.Session()
        s.headers["X-Bench-User"] = user
        # What a browser sends for a click on the site: shutdowns and restarts need that intent.
        s.headers["Sec-Fetch-Site"] = "same-origin"
        return s

    def context(self, user):
        from pyramid_notebook.backends.local.manager import NotebookManager

        return NotebookManager(self.folder).get_notebook_status(user)

    def stop(self):
        from pyramid_notebook.backends.local import forkclient as forkserver
        from pyramid_notebook.core import statefolder

        # The site first: its watcher thread would start the fork server again behind our back.
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        forkserver.stop_all(self.folder)
        for pid_file in statefolder.pid_files(self.folder):
            if os.path.exists(pid_file):
                terminate_daemon(pid_file)



class AccelSite(Site):
    """The bench app under waitress in accel mode, behind the shipped nginx-accel.conf."""

    def __init__(self, workdir):
        super().__init__("accel", workdir)
        # The floor of this design: nginx's auth_request to a bare WSGI grant in the same waitress
        # (bench/app.py, /floor-grant/), then nginx's relay; no Pyramid, no checks.
        self.site_port = self.port
        self.port = free_port()
        prefix = os.path.join(workdir, "nginx-accel")
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        with open(os.path.join(ROOT, "nginx-accel.conf")) as f:
            conf = f.read().replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{self.port};")
        conf = conf.replace("server 127.0.0.1:9999;", f"server 127.0.0.1:{self.site_port};")
        # Measure the relay, not the access log's disk writes (direct access logs nothing either).
        conf = conf.replace("access_log logs/nginx-access.log;", "access_log off;")
        if os.geteuid() == 0:  # workers that can read the (0700) notebook folder, as the README says
            conf = "user root;\n" + conf
        floor = """
        location /floor/notebook/ {
            auth_request /_floor_grant;
            auth_request_set $pyramid_notebook_grant $upstream_http_x_accel_redirect;
            rewrite ^/floor(/notebook/.*)$ $1 break;
            proxy_pass http://$pyramid_notebook_upstream;
            proxy_set_header Host $pyramid_notebook_upstream;
            proxy_set_header Authorization "token $pyramid_notebook_token";
            proxy_set_header Connection $connection_upgrade;
        }
        location = /_floor_grant {
            internal;
            proxy_pass http://pyramid_site/floor-grant$request_uri;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_ignore_headers X-Accel-Redirect;
        }
"""
        conf = conf.replace("        # The site itself.\n", floor + "\n        # The site itself.\n", 1)
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        self.url = f"http://127.0.0.1:{self.port}"
        self.nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", prefix, "-c", "nginx.conf", "-g", "daemon off;"],
                                      stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.nginx.poll() is not None or answers(self.url + "/shell"), 30)
        if self.nginx.poll() is not None:
            raise RuntimeError(f"nginx did not start; see {self.log.name}")

    def stop(self):
        self.nginx.send_signal(15)
        self.nginx.wait(timeout=30)
        super().stop()


def launch_and_load(site, user, variant="1"):
    """Seconds from the launch request to the notebook page served through the proxy."""
    s = site.session(user)
    start = time.perf_counter()
    r = s.get(f"{site.url}/shell?variant={variant}", allow_redirects=False)
    assert r.status_code == 302, r.text
    page = s.get(r.headers["Location"])
    assert page.status_code == 200
    return time.perf_counter() - start


def fork_server_pid(site):
    from pyramid_notebook.backends.local.manager import NotebookManager

    manager = NotebookManager(site.folder, fork_server=True)
    answer = manager.fork_server.ping()
    return answer and answer["pid"]
