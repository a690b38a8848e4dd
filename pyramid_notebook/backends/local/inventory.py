"""Every user's notebook under a notebook folder, for the admin console: state, kernels, memory, CPU, log.

Memory is the notebook server's process plus all its descendants (its kernels, and whatever
they started) and the kernels it forked from the site's zygote (``forked-kernels.json``): PSS where Linux has it (``memory_full_info``; a forked server shares pages with
the fork server, counted once across users), else RSS. Each kernel's process is found among the
server's descendants by its connection file (``kernel-<id>.json`` on its command line), so each
kernel has its own memory too. CPU % is measured over one short window for all users at once.
Nothing here is signalled: it only reads.
"""
import contextlib
import datetime
import json
import os
import time

import psutil
import urllib3

from pyramid_notebook.backends.serverapi import server_report, shell_name
from pyramid_notebook.core import contextfile, statefolder
from pyramid_notebook.core.process import get_daemon_process

#: Lines of the server's ``notebook.stderr.log`` shown.
LOG_LINES = 20
#: Seconds over which CPU % is measured.
CPU_WINDOW = 0.2

_http = urllib3.PoolManager(maxsize=4)


def _iso(timestamp):
    if not timestamp:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def _memory(proc):
    """``(bytes, "pss"|"rss")`` of one process; ``(0, "rss")`` if it is gone or not ours to read."""
    with contextlib.suppress(psutil.Error):
        info = proc.memory_full_info()
        if hasattr(info, "pss"):
            return info.pss, "pss"
        return info.rss, "rss"
    with contextlib.suppress(psutil.Error):
        return proc.memory_info().rss, "rss"
    return 0, "rss"


def log_tail(state_folder, secret="", lines=LOG_LINES) -> list:
    """The last ``lines`` lines of the server's stderr log, with the server's secret masked."""
    try:
        with open(os.path.join(state_folder, statefolder.STDERR_LOG), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 32768))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    if secret:
        text = text.replace(secret, "[secret]")
    return text.splitlines()[-lines:]


def _processes(proc):
    try:
        return [proc] + proc.children(recursive=True)
    except psutil.Error:
        return [proc]


def _forked_kernels(state_path, known) -> list:
    """The server's kernels forked from the site's zygote (not its descendants), and their children.

    Listed by the server (``forked-kernels.json``); a pid counts only while its command line still
    names the kernel's connection file.
    """
    try:
        with open(os.path.join(state_path, statefolder.FORKED_KERNELS_FILE), encoding="utf-8") as f:
            listed = json.load(f)
    except (OSError, ValueError):
        return []
    seen, found = {p.pid for p in known}, []
    for kernel_id, pid in (listed.items() if isinstance(listed, dict) else ()):
        if not isinstance(pid, int) or pid in seen:
            continue
        with contextlib.suppress(psutil.Error):
            kernel = psutil.Process(pid)
            if any(f"kernel-{kernel_id}.json" in a for a in kernel.cmdline()):
                found += [p for p in _processes(kernel) if p.pid not in seen]
    return found


def _kernel_process(processes, kernel_id):
    for p in processes:
        with contextlib.suppress(psutil.Error):
            if any(f"kernel-{kernel_id}.json" in a for a in p.cmdline()):
                return p
    return None


def describe_user(folder_name, state_path, memory_limit=0) -> tuple:
    """``(row, processes)`` for one user's state folder; ``processes`` feed the CPU measurement."""
    pid_file = os.path.join(state_path, statefolder.PID_FILE_NAME)
    context = contextfile.read_context(pid_file) or {}
    proc = get_daemon_process(pid_file)
    row = {
        "user": context.get("username") or folder_name,
        "running": proc is not None,
        "state": "running" if proc else "stopped",
        "pid": proc.pid if proc else None,
        "port": context.get("http_port") if proc else None,
        "started": _iso(context.get("started_at")),
        "stopped": _iso(context.get("stopped_at")) if not proc else None,
        "last_activity": None,
        "shell": shell_name(context),
        "context_hash": context.get("context_hash"),
        "kernels": [],
        "memory": 0,
        "memory_kind": None,
        "memory_limit": int(context.get("memory_limit") or memory_limit or 0),
        "cpu_percent": 0.0,
        "log_tail": log_tail(state_path, context.get("token") or ""),
    }
    if proc is None:
        return row, []
    base_url = f"http://127.0.0.1:{context['http_port']}{context.get('notebook_path') or '/notebook/'}"
    report = server_report(_http, base_url, context.get("token"))
    row["last_activity"] = report["last_activity"]
    row["answers"] = report["answers"]
    processes = _processes(proc)
    processes += _forked_kernels(state_path, processes)
    for kernel in report["kernels"]:
        kproc = _kernel_process(processes, kernel["id"])
        kernel["pid"] = kproc.pid if kproc else None
        kernel["memory"] = sum(_memory(p)[0] for p in _processes(kproc)) if kproc else 0
    row["kernels"] = report["kernels"]
    sizes = [_memory(p) for p in processes]
    row["memory"] = sum(size for size, _ in sizes)
    row["memory_kind"] = "pss" if sizes and all(kind == "pss" for _, kind in sizes) else "rss"
    return row, processes


def measure_cpu(rows_processes, window=CPU_WINDOW) -> None:
    """Fill each row's ``cpu_percent`` (100 = one core) over one ``window`` shared by all rows."""
    every = [p for _, processes in rows_processes for p in processes]
    if not every:
        return
    for p in every:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(window)  # a measurement window, not a wait for anything
    for row, processes in rows_processes:
        total = 0.0
        for p in processes:
            with contextlib.suppress(psutil.Error):
                total += p.cpu_percent(None)
        row["cpu_percent"] = round(total, 1)


def inventory(notebook_folder, memory_limit=0, cpu=True) -> list:
    """One row per user with notebook state under ``notebook_folder`` (see the module docstring)."""
    if not os.path.isdir(notebook_folder):
        return []
    found = []
    for pid_file in statefolder.pid_files(notebook_folder):
        state_path = os.path.dirname(pid_file)
        if os.path.exists(pid_file) or os.path.exists(contextfile.get_context_file(pid_file)):
            found.append(describe_user(os.path.basename(state_path), state_path, memory_limit))
    if cpu:
        measure_cpu(found)
    return [row for row, _ in found]
