"""Kernel websockets that send each message as soon as it is written.

Tornado leaves Nagle's algorithm on for websockets. A kernel answers one request
with several small messages (status busy, the reply, status idle); with Nagle on,
the second one waits for the browser to acknowledge the first, and browsers
delay acknowledgements by up to 40 ms. Every keypress-to-output round trip then
pays that delay. Turning Nagle off per connection is tornado's documented remedy
(``WebSocketHandler.set_nodelay``); Jupyter selects this class through its
``ServerApp.kernel_websocket_connection_class`` setting.
"""
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    """Jupyter's kernel websocket connection with ``TCP_NODELAY`` on its socket."""

    def connect(self):
        """Turn Nagle's algorithm off, then connect as Jupyter does."""
        self.websocket_handler.set_nodelay(True)
        return super().connect()
