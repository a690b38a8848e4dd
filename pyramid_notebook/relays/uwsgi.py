"""Proxy a notebook's websockets through the site when it runs under uWSGI.

Select it with ``pyramid_notebook.websocket_proxy = pyramid_notebook.uwsgi.serve_websocket``.

The browser's handshake has passed the site's authentication (the view) and an
Origin check. We then:

1. open the websocket to the notebook first, offering the browser's
   ``Sec-WebSocket-Protocol`` list and the notebook's secret, so the notebook
   chooses the subprotocol (``v1.kernel.websocket.jupyter.org`` or none);
2. complete the browser's handshake with ``uwsgi.websocket_handshake`` and that
   subprotocol;
3. relay frames both ways as they arrive, waiting on both sockets with
   ``select`` (no polling sleeps). Text stays text and binary stays binary,
   fragments and all: uWSGI's own ``websocket_recv`` drops the frame type, so
   frames are parsed with wsproto (sans-IO) on both sockets instead. Pings are
   answered on the side they arrive; a close on either side closes the other,
   and the worker thread is free again.
"""
import errno
import logging
import os
import select
import socket

from pyramid.httpexceptions import HTTPBadGateway, HTTPException, HTTPForbidden, exception_response
from pyramid.response import Response

from pyramid_notebook.core.extras import needs_extra

with needs_extra("uwsgi"):
    from wsproto import ConnectionType, WSConnection
    from wsproto.connection import Connection
    from wsproto.events import (
        AcceptConnection, BytesMessage, CloseConnection, Ping, RejectConnection, RejectData, Request, TextMessage,
    )
    from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.core.origin import is_cross_site_request
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.relays import counters
from pyramid_notebook.relays.websocket import CONTEXT_ENVIRON_KEY, forwarded_headers, sendable_close_code

logger = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
HANDSHAKE_TIMEOUT = 30.0


class _Closed(Exception):
    """One side of the relay has gone away."""


def _subprotocols(request):
    value = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in value.split(",") if p.strip()]


def _open_upstream(request, port, token, host="127.0.0.1"):
    """Handshake with the notebook; return (socket, wsproto connection, accepted subprotocol).

    Raises an HTTP exception carrying the notebook's own answer if it refuses.
    """
    sock = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT)
    _no_delay(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    headers = [(name.lower().encode(), value.encode("latin-1")) for name, value in forwarded_headers(request, token)]
    headers.append((b"authorization", f"token {token}".encode()))
    sock.sendall(ws.send(Request(host=f"{host}:{port}", target=request.path_qs,
                                 subprotocols=_subprotocols(request), extra_headers=headers)))
    rejection, body = None, b""
    while True:
        data = sock.recv(READ_SIZE)
        if not data:
            sock.close()
            raise error_page(HTTPBadGateway, "Your notebook closed the connection",
                             "The notebook server hung up during the websocket handshake.")
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                sock.settimeout(None)
                return sock, ws, event.subprotocol
            if isinstance(event, RejectConnection):
                rejection = event
                if not event.has_body:
                    break
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    break
        else:
            continue
        sock.close()
        raise exception_response(rejection.status_code if rejection else 502, body=body,
                                 content_type="text/plain")


def _no_delay(sock):
    # Small kernel messages must not wait for Nagle's algorithm and delayed ACKs (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            sent = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 30)
            continue
        except OSError as e:
            raise _Closed() from e
        view = view[sent:]


def _read(fd):
    try:
        data = os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EINTR):
            return None
        raise _Closed() from e
    if not data:
        raise _Closed()
    return data


class _Side:
    """One end of the relay: a file descriptor and the wsproto state for it."""

    def __init__(self, name, fd, ws):
        self.name = name
        self.fd = fd
        self.ws = ws

    def send(self, event):
        _write_all(self.fd, self.ws.send(event))


def relay(client: _Side, upstream: _Side):
    """Pump frames between the two sides until one closes."""
    peers = {client.fd: (client, upstream), upstream.fd: (upstream, client)}
    # Frames the notebook sent right behind its handshake answer are parsed already.
    if not _forward_events(upstream, client):
        return
    while True:
        readable, _, _ = select.select(list(peers), [], [])
        for fd in readable:
            source, target = peers[fd]
            try:
                data = _read(fd)
            except _Closed:
                # The connection dropped without a close frame: say goodbye to the other side.
                _close_quietly(target, 1006, f"{source.name} went away")
                return
            if data is None:
                continue
            source.ws.receive_data(data)
            if not _forward_events(source, target):
                return


def _forward_events(source: _Side, target: _Side) -> bool:
    """Forward what ``source`` has received; False once the relay must end."""
    for event in source.ws.events():
        if isinstance(event, TextMessage):
            target.send(TextMessage(data=event.data, message_finished=event.message_finished))
        elif isinstance(event, BytesMessage):
            target.send(BytesMessage(data=event.data, message_finished=event.message_finished))
        elif isinstance(event, Ping):
            source.send(event.response())
        elif isinstance(event, CloseConnection):
            _close_quietly(source, event.code, event.reason, response_to=event)
            _close_quietly(target, event.code, event.reason)
            return False
    return True


def _close_quietly(side, code, reason, response_to=None):
    try:
        side.send(response_to.response() if response_to is not None else
                  CloseConnection(code=sendable_close_code(code), reason=reason or ""))
    except (_Closed, LocalProtocolError):
        pass


class AlreadySent(Response):
    """What the view returns once the websocket is over: uWSGI's handshake already
    answered the browser, so nothing more may be sent (no second start_response)."""

    def __call__(self, environ, start_response):
        return []


def serve_websocket(request, port):
    """Proxy the websocket handshake in ``request`` to the notebook on ``port``, under uWSGI.

    Use as ``pyramid_notebook.websocket_proxy``. Refuses cross-origin handshakes
    with 403; passes the notebook's refusal (e.g. an unknown kernel) back as is.
    """
    import uwsgi

    if is_cross_site_request(request):
        return error_page(HTTPForbidden, "Cross-origin websocket refused",
                          "This websocket to your notebook was opened by another web site and was refused.")
    context = request.environ.get(CONTEXT_ENVIRON_KEY) or {}
    try:
        upstream_sock, upstream_ws, subprotocol = _open_upstream(request, port, context.get("token", ""),
                                                                 upstream_host(context))
    except OSError as e:
        logger.warning("Websocket to notebook on port %s failed: %s", port, e)
        return error_page(HTTPBadGateway, "Your notebook does not answer",
                          "The notebook server could not be reached. Launch it again from the site.")
    except HTTPException as response:
        return response

    try:
        uwsgi.websocket_handshake(request.headers.get("Sec-WebSocket-Key", ""), request.headers.get("Origin", ""),
                                  subprotocol or "")
        client_fd = uwsgi.connection_fd()
        with socket.socket(fileno=os.dup(client_fd)) as client_sock:
            _no_delay(client_sock)
        client = _Side("browser", client_fd, Connection(ConnectionType.SERVER))
        upstream = _Side("notebook", upstream_sock.fileno(), upstream_ws)
        with counters.websocket_open():  # the metrics' open websockets
            relay(client, upstream)
    except (RemoteProtocolError, LocalProtocolError) as e:
        logger.info("Websocket to notebook on port %s ended on a protocol error: %s", port, e)
    except OSError as e:
        logger.info("Websocket to notebook on port %s ended: %s", port, e)
    finally:
        upstream_sock.close()
    return AlreadySent()
