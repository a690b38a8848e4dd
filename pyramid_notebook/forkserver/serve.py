#!/usr/bin/env python
"""The fork server's script: ``python .../pyramid_notebook/forkserver/serve.py serve SOCKET_FOLDER``.

Started by :class:`pyramid_notebook.backends.local.forkclient.ForkServerClient`, never by hand.
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":  # run as a script: nothing in this folder may shadow a top-level module
    if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
        sys.path.pop(0)
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        print("Usage: serve.py serve SOCKET_FOLDER (started by pyramid_notebook's NotebookManager)",
              file=sys.stderr)
        sys.exit(2)
    from pyramid_notebook.forkserver.process import serve

    sys.exit(serve(os.path.abspath(sys.argv[2])))
