"""Log hygiene for uvicorn in a process that serves :class:`~pyramid_notebook.relays.asgi_app.NotebookASGI`."""
import logging


#: uvicorn's error for a browser's text frame that is not UTF-8: the browser's fault, not the site's.
_INVALID_UTF8 = "Invalid UTF-8 sequence received from client."


class _SpuriousHandshakeError(logging.Filter):
    def filter(self, record):
        if record.getMessage() == _INVALID_UTF8:
            # uvicorn closes that websocket with 1007 and logs a traceback at ERROR: a client
            # could fill the log with them. One warning line says it all.
            record.levelno, record.levelname, record.exc_info, record.exc_text = logging.WARNING, "WARNING", None, None
            return True
        return record.getMessage() != "ASGI callable returned without completing handshake."


def quiet_spurious_handshake_errors():
    """Drop uvicorn's false "returned without completing handshake" error after a refusal.

    uvicorn's websockets-sansio protocol logs it after every ``websocket.http.response``
    although the refusal was sent (uvicorn pull request #3138). :class:`NotebookASGI`
    always accepts or answers a handshake, so in its process the message is never true.
    Its traceback for a browser's invalid UTF-8 text frame becomes a one-line warning.
    """
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _SpuriousHandshakeError) for f in error_logger.filters):
        error_logger.addFilter(_SpuriousHandshakeError())
