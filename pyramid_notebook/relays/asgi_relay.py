"""Relay an approved browser websocket to the notebook, on the event loop.

Used by :mod:`pyramid_notebook.relays.asgi_app` once the site's view approved the handshake:

1. open the websocket to the notebook first (``websockets``), offering the browser's
   subprotocol list, with the notebook's secret, so the notebook chooses the
   subprotocol (``v1.kernel.websocket.jupyter.org`` or none). A refusal or an
   unreachable notebook reaches the browser as an HTTP answer (its status, or 502);
2. accept the browser's handshake with the notebook's choice;
3. pump messages both ways: text stays text, binary stays binary. Each side's pings
   are answered by its own library (uvicorn's keepalive pings also drop dead
   browsers). A close on either side is mirrored to the other with its code and
   reason; a side that vanished without a close frame gives the other 1001.

Back-pressure: every send is awaited. A slow browser makes the relay stop reading the
notebook (``websockets`` then stops reading the socket once ``MAX_QUEUE`` frames wait),
and a slow notebook makes it stop reading the browser (uvicorn pauses reading until the
app asks for the next message). Memory per relay stays bounded.
"""
import asyncio
import logging

from pyramid_notebook.core.extras import needs_extra

with needs_extra("asgi"):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from pyramid_notebook.core.pages import page_html
from pyramid_notebook.relays.websocket import sendable_close_code

logger = logging.getLogger(__name__)

#: Seconds to wait for the notebook's handshake answer.
OPEN_TIMEOUT = 30.0
#: Frames the notebook side buffers before the relay stops reading its socket.
MAX_QUEUE = 16
def _page(status, title, message):
    body = page_html(title, message).encode()
    return status, [(b"content-type", b"text/html; charset=utf-8")], body


async def refuse(scope, send, status: int, headers, body: bytes):
    """Answer a websocket handshake with an HTTP response (or a plain refusal).

    Uses the ASGI ``websocket.http.response`` extension when the server offers it
    (uvicorn does); otherwise closes before accepting, which servers answer with 403.
    """
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = list(headers) + [(b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def open_upstream(upstream, subprotocols):
    """Connect to the notebook; return ``(connection, None)`` or ``(None, refusal)``."""
    headers = [("Authorization", f"token {upstream.token}")] + list(upstream.headers)
    try:
        ws = await connect(
            upstream.url, subprotocols=subprotocols or None, additional_headers=headers,
            user_agent_header=None,  # the browser's, forwarded
            proxy=None,  # loopback / the hub's proxy: never through an HTTP proxy from the environment
            compression=None,  # a local hop: deflate would only cost CPU
            max_size=None,  # the notebook's messages may be large; the browser side has uvicorn's limit
            max_queue=MAX_QUEUE, ping_interval=None, open_timeout=OPEN_TIMEOUT,
        )
    except InvalidStatus as e:
        response = e.response
        content_type = response.headers.get("Content-Type", "text/plain")
        return None, (response.status_code, [(b"content-type", content_type.encode("latin-1"))],
                      bytes(response.body or b""))
    except (OSError, asyncio.TimeoutError, InvalidHandshake) as e:
        logger.warning("Websocket to notebook at %s:%s failed: %s", upstream.host, upstream.port, e)
        return None, _page(502, "Your notebook does not answer",
                           "The notebook server could not be reached. Launch it again from the site.")
    return ws, None


async def _server_closed_browser(pump_in, browser_gone) -> bool:
    """After a send failed with RuntimeError: was it because the server had closed the browser's side?

    uvicorn closes a browser that sent invalid UTF-8 itself (1007) and then refuses every
    ``websocket.send`` with a RuntimeError instead of the OSError the ASGI spec asks for; its
    ``websocket.disconnect`` is already queued for the pump. Anything else is a real error.
    """
    await asyncio.wait({pump_in}, timeout=5.0)
    return browser_gone()


async def relay(upstream, scope, receive, send):
    """Connect to ``upstream``, accept the browser and pump messages until either side closes."""
    ws, refusal = await open_upstream(upstream, scope.get("subprotocols") or [])
    if ws is None:
        await refuse(scope, send, *refusal)
        return
    browser_gone = False

    async def browser_to_notebook():
        nonlocal browser_gone
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data = message.get("bytes")
                    await ws.send(message.get("text") if data is None else data)
                elif kind == "websocket.disconnect":
                    browser_gone = True
                    code = message.get("code", 1005)
                    reason = message.get("reason") or ("browser went away" if code == 1006 else "")
                    await ws.close(sendable_close_code(code), reason)
                    return
        except ConnectionClosed:
            return  # the other direction sees the close and tells the browser
        except Exception:
            # Never leave the notebook leg open with nobody reading the browser.
            logger.exception("Websocket relay to %s:%s failed", upstream.host, upstream.port)
            await ws.close(1011, "relay error")

    pump_in = asyncio.create_task(browser_to_notebook())
    try:
        await send({"type": "websocket.accept", "subprotocol": ws.subprotocol})
        while True:
            try:
                data = await ws.recv()
            except ConnectionClosed as closed:
                received = closed.rcvd  # None: the notebook vanished without a close frame
                break
            if isinstance(data, str):
                await send({"type": "websocket.send", "text": data})
            else:
                await send({"type": "websocket.send", "bytes": data})
        if not browser_gone:
            code, reason = (received.code, received.reason) if received else (1006, "notebook went away")
            await send({"type": "websocket.close", "code": sendable_close_code(code), "reason": reason})
    except OSError as e:  # the browser's connection broke while we sent to it
        logger.info("Websocket relay to %s:%s ended: %s", upstream.host, upstream.port, e)
    except RuntimeError:
        if not await _server_closed_browser(pump_in, lambda: browser_gone):
            raise
        logger.info("Websocket relay to %s:%s ended: the server closed the browser's side", upstream.host,
                    upstream.port)
    finally:
        if not pump_in.done():
            pump_in.cancel()
        try:
            await pump_in
        except (asyncio.CancelledError, ConnectionClosed, OSError):
            pass
        await ws.close()
