"""Terminals as typed (issue 30): a terminal's input stream is the record, whatever the keys do.

Real bash in a real notebook terminal, reached through its websockets as xterm.js reaches it (two
websockets on one terminal, as two browser tabs). What bash ran is taken from bash itself: a DEBUG
trap that writes each command to a file before it runs, and lets only ``echo``, ``:`` and
``history -c`` run (the rest is written down and skipped, so random keys cannot run anything
else). The property test feeds random key sequences (line-editing keys included) and checks that
the record is exactly what was sent and that replaying the record into a fresh bash runs exactly
what the live bash ran.
"""
import codecs
import fcntl
import itertools
import json
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest
import websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyramid_notebook.core import audit
from tests.helpers import CLICK, login, wait_for

CLI = os.path.join(os.path.dirname(sys.executable), "pyramid-notebook")
#: Keys that make bash leave the line editor (run or drop the line): a new prompt follows each.
LINE_ENDS = "\r\x0f\x03"


@pytest.fixture(autouse=True)
def no_shell_variable(monkeypatch):
    """The site runs as a service would (systemd, cron, a CI runner): no ``SHELL`` in its
    environment. Its terminals still run the account's login shell (bash here), not ``sh``."""
    monkeypatch.delenv("SHELL", raising=False)


def cli(*args, text=True):
    """Run ``pyramid-notebook audit ...``; the completed process."""
    return subprocess.run([CLI, "audit", *args], capture_output=True, text=text, timeout=60)


def setup_line(folder) -> str:
    """What makes a bash comparable: no history, fixed completions, PATH empty; a DEBUG trap that
    writes each command to ``folder/ran`` before it runs and lets only ``echo``, ``:`` and
    ``history -c`` run (extdebug: a failing trap skips the command); a line in ``folder/prompts``
    before each prompt (PROMPT_COMMAND), and the prompt's number in the prompt (``@N@``)."""
    ran_file, prompts = shlex.quote(os.path.join(folder, "ran")), shlex.quote(os.path.join(folder, "prompts"))
    # The user cannot type "_", "=" or ">": the prompt's own commands are told apart by them.
    guard = ("_t() { case $BASH_COMMAND in _p|N=*|*'>>'*) return 0;; esac; "
             f"printf '%s\\n' \"$BASH_COMMAND\" >> {ran_file}; "
             "case $BASH_COMMAND in echo*|:*|'history -c') return 0;; esac; return 1; }")
    return ("HISTFILE=; history -c; PATH=/nonexistent; shopt -s extdebug no_empty_cmd_completion; "
            "bind 'set bell-style none'; complete -I -W 'echo :'; complete -D -W 'alpha beta'; "
            f"complete -E -W 'echo'; N=0; _p() {{ N=$((N+1)); echo >> {prompts}; }}; PROMPT_COMMAND=_p; "
            "PS1='@$N@ '; " + guard + "; trap _t DEBUG\r")


def ran(folder) -> list:
    """The commands a bash set up by :func:`setup_line` was given, in order."""
    try:
        with open(os.path.join(folder, "ran"), encoding="utf-8", errors="surrogateescape") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


class Prompts:
    """Waits for a bash set up by :func:`setup_line` to be back in its line editor, and (before a
    Ctrl-C) to have read every key typed since.

    Not by its output: a Ctrl-C makes the terminal discard output not yet read, the prompt
    included. A prompt: PROMPT_COMMAND's line, then the terminal's mode (readline switches the
    canonical mode off before it reads; keys sent before that would be edited by the terminal).
    A Ctrl-C is a signal, not a key bash reads: sent while readline still works on the keys before
    it, bash may keep the line (a race of bash's, not of the record's), so it waits until bash
    has read them all (``rchar``) and waits for more.
    """

    def __init__(self, pid, folder):
        self.pid = pid
        self.tty = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        self.path = os.path.join(folder, "prompts")
        self.count = 0
        self.base, self.typed = 0, 0

    def _rchar(self) -> int:
        with open(f"/proc/{self.pid}/io") as f:
            return int(next(line for line in f if line.startswith("rchar:")).split()[1])

    def _ready(self, number) -> bool:
        try:
            with open(self.path, "rb") as f:
                shown = f.read().count(b"\n")
        except FileNotFoundError:
            return False
        return shown >= number and not termios.tcgetattr(self.tty)[3] & termios.ICANON

    def next(self, timeout=15):
        """Wait for the next prompt."""
        self.count += 1
        wait_for(lambda: self._ready(self.count), timeout=timeout, interval=0.002, message=f"prompt {self.count}")
        self.base, self.typed = self._rchar(), 0

    def sent(self, data):
        """Count ``data`` as typed (a Ctrl-C is not read: the terminal turns it into SIGINT)."""
        self.typed += len(data.encode("utf-8")) - data.count("\x03")

    def settle(self, timeout=15):
        """Wait until bash has read every key typed and waits for the next."""
        def idle():
            # Blocked in readline's wait for a key: pselect6 (x86-64: 270) without a timeout. Not its
            # look for typeahead (a select with a timeout): a SIGINT there is acted on a key later.
            with open(f"/proc/{self.pid}/syscall") as f:
                call = f.read().split()
            waiting = call[:1] == ["270"] and len(call) > 5 and int(call[5], 16) == 0
            return waiting and self._rchar() - self.base >= self.typed

        wait_for(idle, timeout=timeout, interval=0.002, message="bash to read the keys")

    def close(self):
        os.close(self.tty)


class Output:
    """A terminal's output, collected by a thread."""

    def __init__(self, read):
        self.text = ""
        self.thread = threading.Thread(target=self._run, args=(read,), daemon=True)
        self.thread.start()

    def _run(self, read):
        while True:
            try:
                chunk = read()
            except Exception:  # noqa: BLE001 - the terminal or the websocket closed
                return
            if chunk is None:
                return
            self.text += chunk


class LiveTerminal:
    """A notebook terminal of the demo site, with ``sockets`` websockets open on it."""

    def __init__(self, server, notebook_folder, sockets=2, user="user", session=None):
        s = session
        if s is None:
            s = login(server.url, user)
            r = s.get(f"{server.url}/shell2", allow_redirects=False, headers=CLICK)
            assert r.status_code == 302, r.text
            assert s.get(r.headers["Location"]).status_code == 200
        self.session, self.server = s, server
        context = server.manager.get_notebook_status(user)
        self.headers = {"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": server.url}
        self.stream = os.path.join(notebook_folder, ".state", user, audit.AUDIT_FILE_NAME)
        self.offset = len(list(audit.read_records(self.stream)))  # names are reused: count from here
        r = s.post(server.url + "/notebook/api/terminals", headers=self.headers)
        assert r.status_code == 200, r.text
        self.name = r.json()["name"]
        cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        url = f"ws://127.0.0.1:{context['http_port']}/notebook/terminals/websocket/{self.name}"
        self.sockets = [websocket.create_connection(url, origin=server.url, header=[f"Cookie: {cookie}"], timeout=30)
                        for _ in range(sockets)]
        for ws in self.sockets[1:]:
            threading.Thread(target=self._drain, args=(ws,), daemon=True).start()
        self.output = Output(lambda: self._stdout(self.sockets[0]))
        self.prompts = None
        self.sent = []

    @staticmethod
    def _stdout(ws):
        while True:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                return message[1]
            if message[0] == "disconnect":
                return None

    @staticmethod
    def _drain(ws):
        try:
            while ws.recv():
                pass
        except Exception:  # noqa: BLE001 - closed
            return

    def inputs(self) -> list:
        """This terminal's ``terminal-input`` records, in the stream's order."""
        return [r for r in list(audit.read_records(self.stream))[self.offset:]
                if r.get("kind") == "terminal-input" and r.get("terminal") == self.name]

    def send(self, data, socket=0, confirm=True):
        """Type ``data`` on websocket ``socket``; with ``confirm``, wait until the server recorded it
        (so that the next message, on whichever websocket, comes after it); after a key that ends
        the line, wait for the next prompt."""
        count = len(self.sent)
        if self.prompts is not None and "\x03" in data:
            self.prompts.settle()
        self.sockets[socket].send(json.dumps(["stdin", data]))
        self.sent.append(data)
        if confirm:
            wait_for(lambda: len(self.inputs()) > count, timeout=15, interval=0.002, message=f"record of {data!r}")
        if self.prompts is not None:
            self.prompts.sent(data)
            if data and data[-1] in LINE_ENDS:
                self.prompts.next()

    def set_up(self, folder):
        """Make this bash comparable (:func:`setup_line`); waits for its first prompt."""
        self.send(setup_line(folder))
        self.prompts = Prompts(self.inputs()[0]["pid"], folder)
        self.prompts.next()

    def close(self, delete=False):
        for ws in self.sockets:
            ws.close()
        if self.prompts is not None:
            self.prompts.close()
        if delete:
            r = self.session.delete(f"{self.server.url}/notebook/api/terminals/{self.name}", headers=self.headers)
            assert r.status_code == 204, r.text


class ReplayBash:
    """A fresh bash on a pty of its own, set up as the live one, fed recorded input.

    Started by ``setsid --ctty`` (the pty becomes its controlling terminal, so Ctrl-C is a SIGINT
    as in the notebook's terminal), not by forking this process: its other threads could hold a
    lock the forked child needs before it runs bash.
    """

    def __init__(self, folder):
        os.makedirs(folder)
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        try:
            self.proc = subprocess.Popen(["setsid", "--ctty", "bash", "-l"], stdin=slave, stdout=slave, stderr=slave,
                                         env=dict(os.environ, TERM="xterm-256color"), close_fds=True)
        finally:
            os.close(slave)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.output = Output(lambda: decoder.decode(os.read(self.master, 65536)))
        self.prompts = None
        self.write(setup_line(folder))
        wait_for(lambda: os.path.exists(f"/proc/{self.proc.pid}/fd/0"), timeout=15, message="bash")
        self.prompts = Prompts(self.proc.pid, folder)
        self.prompts.next()

    def write(self, data):
        os.write(self.master, data.encode("utf-8"))

    def feed(self, records):
        """Each record's data, in order, as the live terminal got it: the next only after the
        prompt that a line-ending key brings."""
        for record in records:
            data = record["data"]
            if "\x03" in data:
                self.prompts.settle()
            self.write(data)
            self.prompts.sent(data)
            if data and data[-1] in LINE_ENDS:
                self.prompts.next()

    def close(self):
        self.proc.kill()  # an interactive bash ignores SIGTERM
        self.proc.wait(timeout=10)
        if self.prompts is not None:
            self.prompts.close()  # the last open end of the terminal: the reader now reads EIO
        self.output.thread.join(timeout=10)
        os.close(self.master)


# --- the attack report's cases -------------------------------------------------------------


def test_editing_keys_and_two_websockets_cannot_make_the_record_differ(demo_server, notebook_folder, tmp_path):
    live_folder = str(tmp_path / "live")
    os.makedirs(live_folder)
    term = LiveTerminal(demo_server, notebook_folder)
    try:
        term.set_up(live_folder)
        # Ctrl-O runs the line (and fetches the next); Ctrl-C then clears the fetched line.
        term.send("echo one-$((1+1))")
        term.send("\x0f")
        term.send("\x03")
        # Ctrl-A Ctrl-U: the cursor is at the start, so bash keeps the whole line.
        term.send("echo kept-$((2+2))")
        term.send("\x01\x15")
        term.send("\r", socket=1)
        # Kill and yank: the line comes back whole.
        term.send("echo yank-$((3+3))\x01\x0b")
        term.send("\x19")
        term.send("\r")
        # Typed on one websocket, Enter on the other.
        term.send("echo split-$((4+4))")
        term.send("\r", socket=1)
        # A race: keys on both websockets at once, unconfirmed; bash gets them in the record's order.
        term.send("echo race-")
        start = len(term.sent)
        for index, key in enumerate("abcdefgh"):
            term.send(key, socket=index % 2, confirm=False)
        wait_for(lambda: len(term.inputs()) == len(term.sent), timeout=15, message="the race's records")
        term.send("\r", socket=1)

        records = term.inputs()
        data = [r["data"] for r in records]
        raced = data[start:start + 8]
        assert sorted(raced) == list("abcdefgh")
        assert data == term.sent[:start] + raced + term.sent[start + 8:], "every message, exactly, in order"
        assert ran(live_folder) == ["echo one-$((1+1))", "echo kept-$((2+2))", "echo yank-$((3+3))",
                                 "echo split-$((4+4))", "echo race-" + "".join(raced)]
        for shown in ("one-2", "kept-4", "yank-6", "split-8", "race-" + "".join(raced)):
            wait_for(lambda: re.search(rf"\r{re.escape(shown)}\r\n", term.output.text), timeout=15,  # noqa: B023
                     message=f"the output {shown}")
        assert len({r["terminal_id"] for r in records}) == 1 and records[0]["user"] == "user"
        assert all(r["pid"] == records[0]["pid"] and r["peer"] == "127.0.0.1" for r in records)
    finally:
        term.close()

    # The command line: rows of keys as typed, escaped; --json and replay --raw unchanged.
    shown = cli("show", notebook_folder, "--grep", "yank-")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("\n") == 1 and shown.stdout.rstrip().endswith("echo yank-$((3+3))\\x01\\x0b\\x19\\r")
    everything = cli("show", notebook_folder).stdout
    assert "echo one-$((1+1))\\x0f" in everything and "echo kept-$((2+2))\\x01\\x15\\r" in everything
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", everything), "no control character reaches the screen"
    as_json = [json.loads(line) for line in cli("show", notebook_folder, "--json", "--grep", "one-").stdout.splitlines()]
    assert [r["data"] for r in as_json] == ["echo one-$((1+1))", "\x0f"]
    listing = cli("replay", notebook_folder)
    ident = records[0]["terminal_id"]
    assert ident in listing.stdout and f"  {len(records)}  " in listing.stdout, listing.stdout
    raw = cli("replay", notebook_folder, "--terminal", ident[:6], "--raw", "--no-timing", text=False)
    assert raw.returncode == 0 and raw.stdout == "".join(data).encode()
    readable = cli("replay", notebook_folder, "--terminal", ident, "--no-timing").stdout.splitlines()
    assert readable[0].startswith(f"# terminal {term.name} ({ident}) of user")
    assert re.fullmatch(r"\[ *\d+\.\d{3}\] echo split-\$\(\(4\+4\)\)\\r", readable[-2]), readable
    assert cli("verify", notebook_folder).returncode == 0


def test_input_that_cannot_be_recorded_never_reaches_the_shell(demo_server, notebook_folder, tmp_path):
    live_folder = str(tmp_path / "live")
    os.makedirs(live_folder)
    term = LiveTerminal(demo_server, notebook_folder)
    try:
        term.set_up(live_folder)
        term.send("echo before\r")
        # Something else in the stream's place: nothing can be recorded.
        os.rename(term.stream, term.stream + ".kept")
        os.mkdir(term.stream)
        for key in "echo lost\r":
            term.sockets[0].send(json.dumps(["stdin", key]))
        wait_for(lambda: term.output.text.count("[pyramid_notebook] Not run: the audit trail cannot be written") == 10,
                 timeout=15, message="the refusal, once per key")
        os.rmdir(term.stream)
        os.rename(term.stream + ".kept", term.stream)
        term.send("echo after\r", socket=1)
    finally:
        term.close()
    # The refused keys never reached bash: its line was empty when "echo after" was typed.
    assert ran(live_folder) == ["echo before", "echo after"]
    assert [r["data"] for r in term.inputs()] == [setup_line(live_folder), "echo before\r", "echo after\r"]
    assert audit.verify(term.stream) is None


def test_show_escapes_what_would_reach_the_operators_screen(tmp_path):
    stream = str(tmp_path / "audit.jsonl")
    store = audit.AuditStore(stream)
    store.append({"kind": "session", "user": "u", "client": "10.0.0.1", "reason": "\x1b[2Jfix \u202eevil"})
    store.append({"kind": "execute", "user": "u", "notebook": "n.ipynb", "code": "print('\x1b]0;x\x07\\x07')\nsecond"})
    for data in ("echo \x1b[A", "\r"):
        store.append({"kind": "terminal-input", "user": "u", "terminal": "1", "terminal_id": "ab12", "data": data})
    shown = cli("show", stream)
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.splitlines()
    assert rows[0].endswith("launch from 10.0.0.1 reason: \\e[2Jfix \\u202eevil")
    assert rows[1].endswith("n.ipynb  print('\\e]0;x\\x07\\\\x07')  [+1 lines]")
    assert rows[2].endswith("u  terminal 1 (ab12)  echo \\e[A\\r") and len(rows) == 3
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u202e]", shown.stdout)
    as_json = cli("show", stream, "--json").stdout.splitlines()
    assert [json.loads(line) for line in as_json] == list(audit.read_records(stream))  # unescaped, every field


# --- the property: what bash ran is what the record replays ----------------------------------

KEYS = ["echo "] * 4 + ["\r"] * 3 + [":", " ", "a", "b", "1", ";", "\t",
        "\x01", "\x05", "\x15", "\x0b", "\x19", "\x17", "\x7f",  # Ctrl-A, E, U, K, Y, W; backspace
        "\x1b[A", "\x1b[B", "\x1b[C", "\x1b[D",  # the arrows
        "\x0f", "\x03"]  # Ctrl-O, Ctrl-C (Enter is above: commands, not only editing, are typed)
def messages_of(keys) -> list:
    """``keys`` (``(key, cut after it, websocket)``) as websocket messages ``(data, websocket)``:
    a message ends where a cut is drawn and after every key that ends the line (bash leaves the
    line editor there, and the next keys wait for its prompt, as a person's would); a Ctrl-C is
    a message of its own."""
    messages, current, socket = [], "", 0
    for key, cut, which in keys:
        if key == "\x03" and current:
            messages.append((current, socket))  # a Ctrl-C alone: see Prompts
            current = ""
        if not current:
            socket = which
        current += key
        if cut or key in LINE_ENDS:
            messages.append((current, socket))
            current = ""
    if current:
        messages.append((current, socket))
    return messages + [("\x03", 1)]


def test_random_keys_on_two_websockets_replay_to_what_bash_ran(demo_server, notebook_folder, tmp_path):
    first = LiveTerminal(demo_server, notebook_folder)  # logs in and launches the notebook
    first.close(delete=True)
    examples, numbers = [], itertools.count()

    # Each example in a terminal of its own: a shell keeps state across lines (history, the kill
    # ring, readline's last command), and the replay starts from a fresh one.
    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    # The attack report's cases always run first, then random ones.
    @example([("echo ", False, 0), ("a", True, 0), ("\x0f", False, 1)])
    @example([("echo ", False, 0), ("b", True, 0), ("\x01", False, 1), ("\x15", True, 1), ("\r", False, 0)])
    @example([("echo ", False, 0), ("1", False, 0), ("\x01\x0b", True, 0), ("\x19", True, 1), ("\r", False, 1)])
    @example([("echo ", False, 0), ("a", True, 0), ("\r", False, 1), ("\x1b[A", True, 0), ("\x0f", False, 1)])
    @given(st.lists(st.tuples(st.sampled_from(KEYS), st.booleans(), st.integers(0, 1)), min_size=6, max_size=30))
    def check(keys):
        number = next(numbers)
        live_folder, replay_folder = str(tmp_path / f"live-{number}"), str(tmp_path / f"replay-{number}")
        os.makedirs(live_folder)
        messages = messages_of(keys)
        term = LiveTerminal(demo_server, notebook_folder, session=first.session)
        try:
            term.set_up(live_folder)
            for data, socket in messages:
                term.send(data, socket)
            recorded = term.inputs()[1:]
        finally:
            term.close(delete=True)
        assert [r["data"] for r in recorded] == [data for data, _ in messages], "the record is what was sent"
        bash = ReplayBash(replay_folder)
        try:
            bash.feed(recorded)
        finally:
            bash.close()
        assert ran(replay_folder) == ran(live_folder), f"replayed {[d for d, _ in messages]!r}"
        examples.append(ran(live_folder))

    started = time.monotonic()
    check()
    assert time.monotonic() - started < 150
    # The examples did run commands (the property is not about empty lines only).
    assert sum(len(commands) for commands in examples) >= 5, examples
