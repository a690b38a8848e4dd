"""The fork server's kernels against a plain start's: ``bench/run --only forked``.

Two users' notebook servers in one folder, one forked from the fork server and one started the
plain way (``notebook_daemon.py start``), each with its warm kernel; then ``n`` execute round trips
on each, interleaved, straight to the server's port (no site in between), and each one's memory
(RSS and PSS of server + kernel). This is what decided that ``pyramid_notebook.fork_server`` is on
by default: a forked server must not be slower, nor bigger, once it runs.
"""
import os
import time


def _memory(pid):
    """(RSS, PSS) in MiB of a server and its kernels."""
    import psutil

    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    return (sum(p.memory_info().rss for p in procs) / 2**20, sum(p.memory_full_info().pss for p in procs) / 2**20)


def measure_forked(results, stats, ms, fmt, channel_class, first_result, wait_until, workdir, n):
    import requests

    from pyramid_notebook.notebookmanager import NotebookManager
    from tests.helpers import random_port_base, stop_all_notebooks

    folder = os.path.join(workdir, "notebooks-forked")
    os.makedirs(folder, exist_ok=True)
    base = random_port_base()
    managers = {"forked": NotebookManager(folder, min_port=base, port_range=20, fork_server=True),
                "plain": NotebookManager(folder, min_port=base, port_range=20, fork_server=False)}
    managers["forked"].start_fork_server()
    managers["forked"].fork_server.wait_until_ready(timeout=120)
    context = {"context_hash": "bench-forked", "startup": "x = 42\n", "greeting": "", "notebook_path": "/notebook/"}
    channels = {}
    try:
        for name, manager in managers.items():
            manager.start_notebook_on_demand(name, dict(context))
            wait_until(lambda: "warm_session" in (manager.get_notebook_status(name) or {}), 60)
            ctx = manager.get_notebook_status(name)
            with open(f"/proc/{ctx['pid']}/cmdline", "rb") as f:  # setproctitle: one string, no NUL inside
                assert (b"\0" not in f.read().rstrip(b"\0")) == (name == "forked"), name
            auth = {"Authorization": "token " + ctx["token"]}
            session = requests.get(f"http://127.0.0.1:{ctx['http_port']}/notebook/api/sessions/{ctx['warm_session']}",
                                   headers=auth, timeout=10).json()
            channels[name] = channel_class(f"ws://127.0.0.1:{ctx['http_port']}/notebook/api/kernels/"
                                           f"{session['kernel']['id']}/channels", [f"Authorization: token {ctx['token']}"])
            assert first_result(channels[name], "x") == "42", "the startup script ran in the warm kernel"
        times = {name: [] for name in channels}
        for _ in range(n):
            for name, channel in channels.items():
                start = time.perf_counter()
                first_result(channel, "1")
                times[name].append(ms(time.perf_counter() - start))
        forked, plain = stats(times["forked"]), stats(times["plain"])
        memory = {name: _memory(manager.get_notebook_status(name)["pid"]) for name, manager in managers.items()}
        results.add("kernel execute round trip: forked vs plain server", forked, plain, target="<= 1.1",
                    passed=forked["median"] / plain["median"] <= 1.1,
                    note=f"forked {fmt(forked)} / plain {fmt(plain)} ms, p95 {forked['p95']:.2f} vs "
                         f"{plain['p95']:.2f}; straight to the port")
        results.add("memory of one idle user (server + kernel): forked vs plain PSS", memory["forked"][1],
                    memory["plain"][1], unit="MB", ratio=memory["forked"][1] / memory["plain"][1], target="<= 1",
                    passed=memory["forked"][1] <= memory["plain"][1],
                    note=f"RSS {memory['forked'][0]:.0f} vs {memory['plain'][0]:.0f} MB: a forked server's RSS also "
                         "counts the fork server's pages it shares; PSS splits shared pages among their sharers")
    finally:
        for channel in channels.values():
            channel.ws.close()
        stop_all_notebooks(folder)
