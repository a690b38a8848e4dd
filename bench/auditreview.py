"""Benchmark the audit review (issue 32) through the real demo site: 100,000 records over 50 users,
the sessions listed (JSON and HTML), a text search, the index rebuilt.

    .venv/bin/python bench/auditreview.py [--records 100000] [--users 50] [--samples 50] [--output FILE]

The streams are written by the trail's own writer (:class:`~pyramid_notebook.core.audit.AuditStore`):
per user, a launch (``session`` record) every 200 records, cells of a few lines of code (one in 500
matching ``pyramid_notebook.audit_sensitive``), terminal lines and a shared guest now and then. The
demo app runs in waitress in this process, on loopback; the demo's admin (an auditor) asks it:

* the index's first build (all records read, every chain verified), and a rebuild after it is deleted;
* the list, JSON and HTML, p50 (target: 150 ms), nothing changed between requests;
* a text search (``q``) for a word in one cell in a thousand, p50 (target: 300 ms);
* the list after one record was appended to one stream (the incremental read), p50.

This machine is shared: read the medians, not single samples.
"""
import argparse
import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from recipes import login, p50_ms, report, stop, timed  # noqa: E402

from pyramid_notebook.core import audit  # noqa: E402
from pyramid_notebook.core.auditindex import audit_index, index_path  # noqa: E402

TARGETS_MS = {"list_json_p50": 150, "list_html_p50": 150, "search_p50": 300}
AUDIT = "/notebook-admin/audit"
SENSITIVE = ("DROP\\s+TABLE",)
WORDS = "select user order invoice total amount filter where print import pandas frame report".split()


def fill(folder, records, users):
    """Write ``records`` records over ``users`` streams; return the stores."""
    rng = random.Random(32)
    stores = []
    per_user = records // users
    for u in range(users):
        name = f"user{u:02d}"
        store = audit.AuditStore(os.path.join(folder, ".state", name, audit.AUDIT_FILE_NAME))
        stores.append(store)
        base = {"user": name, "owner": name, "shell": "ab" * 32, "launch_url": "/shell1", "reason": "bench"}
        for n in range(per_user):
            if n % 200 == 0:
                store.append(dict(base, kind="session"))
                continue
            who = dict(base, user="guest", role="collaborate") if n % 200 > 190 else base
            if n % 10 == 9:
                store.append(dict(who, kind="terminal-input", terminal="1", data="ls -l /srv/data\r"))
                continue
            code = "\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(3))
            if n % 1000 == 7:
                code += "\nneedle_%d = 1" % n
            if n % 500 == 3:
                code += "\nsession.execute('DROP TABLE invoices')"
            store.append(dict(who, kind="execute", code=code, notebook="report.ipynb", kernel="k", silent=False))
    return stores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-auditreview-")
    app, server = None, None
    try:
        notebooks = os.path.join(folder, "notebooks")
        start = time.perf_counter()
        stores = fill(notebooks, args.records, args.users)
        fill_s = time.perf_counter() - start
        # The first build, before the site starts: once it has, its background verification
        # (web/audittrails.py) would build the index before the first request could time it.
        start = time.perf_counter()
        audit_index(notebooks, SENSITIVE).refresh()
        first = time.perf_counter() - start
        app, server, base = serve(folder)
        session = login(base)
        json_headers = {"Accept": "application/json"}
        listed = session.get(base + AUDIT, headers=json_headers).json()
        assert listed["sessions"] and all(t["verified"] for t in listed["trails"]), listed["trails"][:3]
        assert session.get(base + AUDIT).status_code == 200
        list_json = timed(lambda: session.get(base + AUDIT, headers=json_headers), args.samples)
        list_html = timed(lambda: session.get(base + AUDIT), args.samples)
        found = session.get(base + AUDIT, params={"q": "needle_7"}, headers=json_headers).json()["sessions"]
        assert found, "the search found nothing"
        search = timed(lambda: session.get(base + AUDIT, params={"q": "needle_7"}, headers=json_headers),
                       args.samples)
        counter = iter(range(10 ** 6))
        appended = timed(lambda: (stores[0].append({"kind": "execute", "user": "user00", "owner": "user00",
                                                    "code": f"tick_{next(counter)} = 1"}),
                                  session.get(base + AUDIT, headers=json_headers)), max(10, args.samples // 2))
        os.unlink(index_path(notebooks))
        rebuild = timed(lambda: session.get(base + AUDIT, headers=json_headers), 1)[0]
        results = {
            "records": args.records, "users": args.users, "fill_seconds": round(fill_s, 1),
            "sessions_first_page": len(listed["sessions"]), "index_bytes": os.path.getsize(index_path(notebooks)),
            "first_build_s": round(first, 2), "rebuild_s": round(rebuild, 2),
            "list_json_p50": p50_ms(list_json), "list_html_p50": p50_ms(list_html), "search_p50": p50_ms(search),
            "append_then_list_p50": p50_ms(appended), "samples": args.samples, "load_average": os.getloadavg(),
        }
        report(results, TARGETS_MS, args.output)
        session.close()
    finally:
        stop(server, app, folder)


def serve(folder):
    """The demo site over ``folder/notebooks``, with a sensitive pattern (as bench/recipes.py serves it)."""
    import threading

    import waitress.server
    from pyramid.paster import get_app

    ini = os.path.join(folder, "bench.ini")
    with open(ini, "w") as f:
        f.write("[app:main]\nuse = egg:pyramid_notebook#demo\n"
                f"pyramid_notebook.notebook_folder = {folder}/notebooks\n"
                f"sqlalchemy.url = sqlite:///{folder}/demo.sqlite\npyramid_notebook.fork_server = false\n"
                "pyramid_notebook.warm_up = false\npyramid_notebook.precompress = false\n"
                "pyramid_notebook.audit_sensitive = DROP\\s+TABLE\n")
    app = get_app(ini, "main")
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.effective_port}"


if __name__ == "__main__":
    main()
