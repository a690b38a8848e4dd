"""Log hygiene for uvicorn in a process that serves :class:`~pyramid_notebook.relays.asgi_app.NotebookASGI`."""
import logging


class _SpuriousHandshakeError(logging.Filter):
    def filter(self, record):
        return record.getMessage() != "ASGI callable returned without completing handshake."


def quiet_spurious_handshake_errors():
    """Drop uvicorn's false "returned without completing handshake" error after a refusal.

    uvicorn's websockets-sansio protocol logs it after every ``websocket.http.response``
    although the refusal was sent (uvicorn pull request #3138). :class:`NotebookASGI`
    always accepts or answers a handshake, so in its process the message is never true.
    """
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _SpuriousHandshakeError) for f in error_logger.filters):
        error_logger.addFilter(_SpuriousHandshakeError())
