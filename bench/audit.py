"""Benchmark the audit trail: a kernel round trip with and without recording, side by side.

    .venv/bin/python bench/audit.py [--samples 300] [--output bench/audit-results.json]

Two real notebook servers of the local backend, identical but for the ``audit`` context the
site writes at launch (recording on for one, off for the other). The same cell (``1``) is
sent to each server's warm kernel over its v1 websocket, interleaved sample by sample, and
the time to its ``execute_reply`` is measured. Also measured: what the server adds per cell,
in this process (parsing the message, storing the record, the logger's copy to a file). Target: recording adds at most 0.3 ms
to the median round trip. This machine is shared: read the medians and the difference, not
the absolute times.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid

import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_notebook.backends.local.manager import NotebookManager  # noqa: E402
from pyramid_notebook.core import audit  # noqa: E402

V1 = "v1.kernel.websocket.jupyter.org"
TARGET_MS = 0.3


def free_port_base(size=10):
    """A port range nobody listens on (by trying its first port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size < 65000:
            return base


class Channel:
    """A kernel channels websocket, v1 protocol, Nagle off."""

    def __init__(self, url, token):
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {token}"], subprotocols=[V1],
                                              timeout=60, sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))

    def round_trip(self, code="1") -> float:
        """Seconds from sending ``code`` to its ``execute_reply``."""
        from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1

        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "b", "session": "b", "date": "",
                  "version": "5.3"}
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        data = serialize_msg_to_ws_v1([json.dumps(x).encode() for x in (header, {}, {}, content)], "shell")
        start = time.perf_counter()
        self.ws.send_binary(data)
        while True:
            _, raw = self.ws.recv_data()
            _, parts = deserialize_msg_from_ws_v1(raw)
            if json.loads(parts[1]).get("msg_id") == msg_id and json.loads(parts[0])["msg_type"] == "execute_reply":
                return time.perf_counter() - start


def start(manager, user, enabled):
    """Start ``user``'s notebook with recording on or off; return (context, channel)."""
    context = {"notebook_path": "/notebook/", "context_hash": "bench", "startup": "", "greeting": "",
               "audit": {"enabled": enabled, "user": user, "client": "127.0.0.1", "shell": "bench",
                         "launch_id": uuid.uuid4().hex}}
    context = manager.start_notebook(user, context)
    auth = {"Authorization": "token " + context["token"]}
    base = f"http://127.0.0.1:{context['http_port']}/notebook/"
    deadline = time.monotonic() + 60
    kernel = None
    while kernel is None:
        for session in requests.get(base + "api/sessions", headers=auth, timeout=10).json():
            if session["path"] == context["notebook_name"]:
                kernel = session["kernel"]["id"]
        if kernel is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm kernel did not start")
            time.sleep(0.2)
    channel = Channel(f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels",
                      context["token"])
    for _ in range(20):  # warm up both paths
        channel.round_trip()
    return context, channel


def in_process(folder, samples):
    """Seconds per cell for what the notebook server adds: parse the v1 message, decide by the
    allow-list, record it (store and the logger's copy, to a file as a server's stderr log), as the
    connection class does."""
    import logging

    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    from pyramid_notebook.server import kernel_messages
    from pyramid_notebook.server.audit_kernel import V1, AuditingKernelWebsocketConnection
    from pyramid_notebook.server.recorder import Auditor

    class Connection:
        subprotocol = V1

    handler = logging.FileHandler(os.path.join(folder, "stderr.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    audit_logger = logging.getLogger(audit.LOGGER_NAME)
    audit_logger.addHandler(handler)
    audit_logger.setLevel(logging.INFO)
    audit_logger.propagate = False
    auditor = Auditor(os.path.join(folder, "inprocess", audit.AUDIT_FILE_NAME),
                      static_context={"audit": {"enabled": True, "user": "bench", "client": "127.0.0.1"}})
    header = {"msg_id": "m", "msg_type": "execute_request", "username": "b", "session": "b", "date": "",
              "version": "5.3"}
    content = {"code": "1", "silent": False, "store_history": False, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    message = serialize_msg_to_ws_v1([json.dumps(x).encode() for x in (header, {}, {}, content)], "shell")
    parse = AuditingKernelWebsocketConnection._parse
    times = []
    try:
        for _ in range(samples):
            t = time.perf_counter()
            channel, found_header, found_content, _ = parse(Connection(), message)
            kernel_messages.decide(channel, found_header, found_content)
            record = kernel_messages.record_for(channel, found_header, found_content)
            record.update(notebook="x.ipynb", kernel="k", channel=channel, session=found_header["session"],
                          msg_id=found_header["msg_id"])
            auditor.record(record)
            times.append(time.perf_counter() - t)
    finally:
        audit_logger.removeHandler(handler)
        handler.close()
    return times


def stats(seconds):
    ms = sorted(s * 1000 for s in seconds)
    return {"p50": statistics.median(ms), "p90": ms[int(len(ms) * 0.9)], "min": ms[0], "max": ms[-1], "n": len(ms)}


def main(argv=None) -> int:
    """Run the comparison; print a table, write JSON; exit status 1 when over the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "audit-results.json"))
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="bench-audit-")
    manager = NotebookManager(folder, min_port=free_port_base(), port_range=10, kill_timeout=600,
                              startup_timeout=120, fork_server=False)
    try:
        audited_ctx, audited = start(manager, "audited", True)
        _, plain = start(manager, "plain", False)
        on, off = [], []
        for _ in range(args.samples):  # interleaved: drift hits both alike
            on.append(audited.round_trip())
            off.append(plain.round_trip())
        stream = os.path.join(folder, ".state", "audited", audit.AUDIT_FILE_NAME)
        recorded = sum(1 for r in audit.read_records(stream) if r.get("kind") == "execute")
        appends = in_process(folder, args.samples)
    finally:
        manager.stop_notebook("audited")
        manager.stop_notebook("plain")
        shutil.rmtree(folder, ignore_errors=True)
    with_audit, without, append = stats(on), stats(off), stats(appends)
    added = with_audit["p50"] - without["p50"]
    # The median of the pairs' differences: less moved by the load of a shared machine.
    paired = statistics.median((a - b) * 1000 for a, b in zip(on, off))
    rows = [("kernel round trip, audited", with_audit), ("kernel round trip, not audited", without),
            ("one cell recorded in-process", append)]
    print(f"{'metric':40} {'p50 ms':>8} {'p90 ms':>8} {'min':>7} {'max':>7}")
    for name, st in rows:
        print(f"{name:40} {st['p50']:8.3f} {st['p90']:8.3f} {st['min']:7.3f} {st['max']:7.3f}")
    verdict = "pass" if added <= TARGET_MS else "FAIL"
    print(f"added by auditing (p50): {added:.3f} ms (median of paired differences {paired:.3f} ms), "
          f"target <= {TARGET_MS} ms: {verdict}; {recorded} cells recorded")
    with open(args.output, "w") as f:
        json.dump({"audited": with_audit, "not_audited": without, "append": append, "added_p50_ms": added,
                   "paired_median_ms": paired,
                   "target_ms": TARGET_MS, "pass": added <= TARGET_MS, "recorded": recorded}, f, indent=2)
    return 0 if added <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
