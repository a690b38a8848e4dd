"""One way to fork a child that runs a function and never returns into the parent's code.

Used where a pristine process forks a helper of its own: the fork server its site's kernel zygote
(``forkserver/zygotes.py``), a notebook server its own zygote and a zygote its throwaway probes
(``server/kernel_zygote.py``, ``server/zygote_probe.py``).
"""
import os
import sys


def fork_running(work) -> int:
    """Fork; in the child run ``work()`` and exit with what it returns (an int; 1 if it raised, with
    its traceback on stderr), never returning. In the parent: the child's pid. Output buffered so far
    is flushed first, so that the child does not write it again."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1  # pragma: no cover - runs in the child
    try:  # pragma: no cover
        code = work()
    except BaseException:  # pragma: no cover - the child's log is where its failure shows
        import traceback

        traceback.print_exc()
    finally:  # pragma: no cover
        os._exit(code if isinstance(code, int) else 0)
