"""Benchmark pyramid_notebook against direct access, side by side in one run.

    bench/run [--quick] [--output bench/results.json] [--only cold,click,warm,forked,kernels,http,ws,idle,scale,accel,hub,hundred]
              [--servers waitress,uwsgi,uvicorn] [--sizes 10,25,50] [--samples 10]

Prints one table (metric, proxied, direct/baseline, ratio, target, pass) and writes it as JSON.
Every comparison is measured interleaved in the same run, on loopback; report medians (with
min/max) and ratios, because this machine is shared and absolute times drift.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import HEADER, PYTHON, UWSGI, Results  # noqa: E402
from bench.launches import measure_click, measure_cold, measure_scale, measure_warm  # noqa: E402
from bench.sites import AccelSite, Site  # noqa: E402
from bench.traffic import measure_http, measure_idle, measure_ws  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each measurement briefly (CI keeps it working)")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results.json"))
    parser.add_argument("--only", default="cold,click,warm,forked,kernels,http,ws,idle,scale,accel,hub",
                        help="accel: nginx accel mode's HTTP and websocket rows (needs nginx); "
                             "hub: the JupyterHub backend's rows")
    parser.add_argument("--servers", default="waitress,uwsgi,uvicorn",
                        help="web servers for the http and ws rows (cold, warm and scale use waitress)")
    parser.add_argument("--sizes", default="10,25,50", help="user counts of the scale rows")
    parser.add_argument("--samples", type=int, default=10, help="launches measured by the cold and click rows")
    parser.add_argument("--users", type=int, default=20, help="idle users of the kernels rows' memory")
    parser.add_argument("--hundred", type=int, default=100,
                        help="idle users of the hundred rows (--only hundred; not in the default run)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    servers = set(args.servers.split(","))
    q = args.quick
    workdir = tempfile.mkdtemp(prefix="pyramid-notebook-bench-")
    results = Results()
    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; quick={q}\n")
    print(HEADER)
    if only == {"hub"}:  # the JupyterHub backend's rows alone
        from bench.hub import measure_hub

        measure_hub(results, q)
        only = set()
    waitress_site = Site("waitress", workdir) if only - {"accel", "hundred"} else None
    accel_site = AccelSite(workdir) if "accel" in only and os.path.exists("/usr/sbin/nginx") else None
    uwsgi_site = Site("uwsgi", workdir) if ({"http", "ws"} & only) and "uwsgi" in servers and os.path.exists(UWSGI) \
        else None
    uvicorn_site = Site("uvicorn", workdir) if ({"http", "ws", "idle"} & only) and "uvicorn" in servers else None
    try:
        if "cold" in only:
            measure_cold(results, waitress_site, workdir, 2 if q else args.samples)
        if "click" in only:
            measure_click(results, waitress_site, workdir, 2 if q else args.samples)
        if "warm" in only:
            measure_warm(results, waitress_site, 30 if q else 300)
        if "forked" in only:
            from bench.forked import measure_forked

            measure_forked(results, workdir, 50 if q else 400)
        if "kernels" in only:  # kernels forked from the zygote vs plain (issue 33)
            from bench.kernels import measure_kernels

            measure_kernels(results, workdir, 3 if q else 10, 3 if q else args.users)
        if "hundred" in only:  # a hundred idle users with the default settings (issue 33)
            from bench.hundred import measure_hundred

            measure_hundred(results, workdir, 5 if q else args.hundred, 3 if q else 10)
        if "http" in only:
            if "waitress" in servers:
                measure_http(results, waitress_site, 80 if q else 800)
            for site in (uwsgi_site, uvicorn_site):
                if site:
                    measure_http(results, site, 80 if q else 800)
        if "ws" in only:
            for site in (uwsgi_site, uvicorn_site):
                if site:
                    measure_ws(results, site, 30 if q else 300)
        if "idle" in only and uvicorn_site:
            measure_idle(results, uvicorn_site, 100 if q else 1000, 50 if q else 300)
        if "scale" in only:
            measure_scale(results, waitress_site, [3] if q else [int(x) for x in args.sizes.split(",")])
        if accel_site:
            measure_http(results, accel_site, 80 if q else 800)
            measure_ws(results, accel_site, 30 if q else 300)
        if "hub" in only and os.path.exists(os.path.join(os.path.dirname(PYTHON), "jupyterhub")) and \
                os.path.exists(os.path.join(ROOT, ".venv", "node", "node_modules", ".bin", "configurable-http-proxy")):
            from bench.hub import measure_hub

            measure_hub(results, q)
    finally:
        for site in (accel_site, waitress_site, uwsgi_site, uvicorn_site):
            if site:
                site.stop()
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "memory_gib": round(psutil.virtual_memory().total / 2**30)},
              "quick": q, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": results.rows}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
