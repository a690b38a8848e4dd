"""The kernel's launcher: ipykernel's own, with its last loopback TCP socket moved to a Unix socket.

Run by :class:`~pyramid_notebook.server.kernel_start.SiteKernelManager` as a script, in place of
``-m ipykernel_launcher`` (``python -P private_ipykernel.py -f CONNECTION_FILE``): standalone (no
package imports), so it runs from an installed package or a checkout alike, and nothing of the
user's folder is on ``sys.path`` (``-P``).

ipykernel's IOPub thread listens on a loopback TCP port for the output of the kernel's forked
children (``multiprocessing`` with ``fork``, ``os.fork``): a ``PULL`` socket, so nothing can be read
from it, and what arrives without its per-kernel random key is dropped, but any local account
could still connect and send to it. Here it is bound instead to a Unix socket in the kernel's
private folder (``$PYRAMID_NOTEBOOK_KERNEL_SOCKETS``, mode 0700), beside the kernel's channels;
the forked children connect to it there. Should a later ipykernel no longer have the methods
replaced here, the kernel starts as ipykernel's own launcher starts it (and
``tests/test_private_kernels.py`` finds the TCP port).
"""
import os
import sys
import warnings

#: Environment variable naming the kernel's private folder (set by the kernel manager).
SOCKETS_ENV = "PYRAMID_NOTEBOOK_KERNEL_SOCKETS"


def use_private_pipe(folder: str) -> bool:
    """Bind the IOPub thread's subprocess pipe to ``<folder>/iopub-pipe``; False if ipykernel differs."""
    import zmq
    from ipykernel import iostream
    from zmq.eventloop.zmqstream import ZMQStream

    thread = iostream.IOPubThread
    if not all(hasattr(thread, name) for name in ("_setup_pipe_in", "_setup_pipe_out", "_handle_pipe_msg")):
        return False
    address = "ipc://" + os.path.join(folder, "iopub-pipe")

    def _setup_pipe_in(self):
        """Listen for the forked children's output on the private Unix socket."""
        self._pipe_uuid = os.urandom(16)  # as ipykernel: the key its pipe messages carry
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        try:
            pipe_in.bind(address)
        except zmq.ZMQError as e:
            warnings.warn(f"Couldn't bind IOPub Pipe to {address}: {e}\nsubprocess output will be unavailable.",
                          stacklevel=2)
            self._pipe_flag = False
            pipe_in.close()
            return
        self._pipe_port = 0
        self._pipe_in = ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)

    def _setup_pipe_out(self):
        """In a forked child: send output to the parent's private Unix socket."""
        ctx = zmq.Context()  # a new context after the fork, as ipykernel's
        pipe_out = ctx.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(address)
        return ctx, pipe_out

    thread._setup_pipe_in = _setup_pipe_in
    thread._setup_pipe_out = _setup_pipe_out
    return True


def main() -> None:
    """Start the IPython kernel, as ``python -m ipykernel_launcher`` does."""
    folder = os.environ.pop(SOCKETS_ENV, "")
    if folder and os.path.isdir(folder):
        use_private_pipe(folder)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # started without -P: nothing beside this file shadows a module
    main()
