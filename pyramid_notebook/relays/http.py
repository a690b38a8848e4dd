"""Stream an HTTP request to a notebook server on localhost and its answer back.

Bodies stream both ways in chunks (no whole-body buffering), connections to
each notebook are kept alive and reused, hop-by-hop headers are dropped and the
usual ``X-Forwarded-*`` headers are added. The proxy authenticates to the
notebook with the notebook's per-start secret; the browser never sees it.

Large answers worth it (a big notebook through the contents API, a big text file) are brotli- or
gzip-compressed on the fly when the browser accepts it (:func:`on_the_fly_coding`). Answers that
may hold a secret next to input an attacker chooses are never compressed: compressed sizes would
let a page on another site guess the secret byte by byte by making the browser send requests
(BREACH). Those are Jupyter's HTML pages: their page config holds the ``_xsrf`` token and they
echo the URL's path. JSON API answers and the user's files hold no secret.
"""
import logging
import os
import threading
import time

import urllib3
from pyramid.response import FileIter, Response

from pyramid_notebook.relays.compress import ON_THE_FLY_MIN_SIZE, StreamCompressor, accepted_codings, cache_for
from pyramid_notebook.core.person import PERSON_HEADER, person_header_value
from pyramid_notebook.core.pools import close_idle

# Large enough that big static bundles cost few Python-level iterations.
CHUNK_SIZE = 256 * 1024
#: Answers with a Content-Length up to this are read whole before they are passed on.
SMALL_BODY = 64 * 1024
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade",
})
# Replaced by the proxy: the browser's credentials for the site are not the notebook's, and only the
# site says who the person is (core/person.py).
REPLACED_REQUEST_HEADERS = frozenset({"host", "authorization", "content-length", PERSON_HEADER.lower()})
TIMEOUT = urllib3.Timeout(connect=5.0, read=300.0)
#: Pools kept at most (one per notebook address); the least recently used one is closed beyond it.
MAX_POOLS = 128
#: Seconds between two sweeps of idle connections whose notebook went away.
SWEEP_INTERVAL = 10.0
#: Seconds a notebook's pool may go unused before the sweeper closes its idle connections too:
#: Jupyter keeps an idle keep-alive open for an hour, so a notebook the user left would hold
#: descriptors of every web process that relayed to it until then.
POOL_IDLE = 30.0

logger = logging.getLogger(__name__)
_pool_manager = None
_pool_lock = threading.Lock()
_last_used = {}  # (host, port) -> time.monotonic() of the last request through that pool


class UpstreamError(Exception):
    """The notebook server could not be reached."""


def get_pool_manager() -> urllib3.PoolManager:
    """One connection pool manager per process, made on first use (after any fork).

    Its first use also starts the sweeper thread (:func:`sweep_dead_connections`).
    """
    global _pool_manager
    if _pool_manager is None:
        with _pool_lock:
            if _pool_manager is None:
                _pool_manager = urllib3.PoolManager(num_pools=MAX_POOLS, maxsize=32, block=False, retries=False)
                threading.Thread(target=_sweep_forever, name="pyramid_notebook pool sweeper", daemon=True).start()
    return _pool_manager


def pool_for(host: str, port: int):
    """The connection pool to a notebook at ``host:port`` (its use noted for :data:`POOL_IDLE`)."""
    _last_used[(host.lower(), int(port))] = time.monotonic()
    return get_pool_manager().connection_from_host(host, port, scheme="http")


def drop_pool(host: str, port: int) -> int:
    """Close every idle connection to ``host:port`` (a notebook that stopped or failed); return how many.

    Without this, the sockets of a stopped notebook stay in ``CLOSE_WAIT`` in the web
    process until the same port is used again.
    """
    return close_idle(_pool_manager, False, host, port)


def sweep_dead_connections() -> int:
    """Close idle connections whose notebook closed its end, and all idle connections of pools
    unused for :data:`POOL_IDLE` seconds (in this process); return how many.

    Runs every :data:`SWEEP_INTERVAL` seconds in a daemon thread, so every web process
    lets go of a stopped notebook's sockets, not only the one that stopped it.
    """
    closed = close_idle(_pool_manager, True)
    now = time.monotonic()
    for (host, port), used in list(_last_used.items()):
        if now - used > POOL_IDLE:
            _last_used.pop((host, port), None)
            closed += close_idle(_pool_manager, False, host, port)
    return closed


def _sweep_forever():
    while True:
        time.sleep(SWEEP_INTERVAL)
        try:
            sweep_dead_connections()
        except Exception:  # never let the sweeper die: the next round may succeed
            logger.exception("Sweeping idle notebook connections failed")


def _connection_tokens(value: str) -> set:
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def upstream_headers(request, port: int, token: str, host: str = "127.0.0.1") -> dict:
    """Headers for the notebook: the browser's minus hop-by-hop ones, plus forwarding info."""
    drop = HOP_BY_HOP | REPLACED_REQUEST_HEADERS | _connection_tokens(request.headers.get("Connection", ""))
    headers = urllib3.HTTPHeaderDict()
    for name, value in request.headers.items():
        if name.lower() not in drop and not name.lower().startswith("x-forwarded-"):
            headers.add(name, value)
    prior = request.headers.get("X-Forwarded-For")
    client = request.remote_addr or ""  # not client_addr: that trusts X-Forwarded-For
    headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Proto"] = request.scheme
    headers["Host"] = f"{host}:{port}"
    headers["Authorization"] = f"token {token}"
    person = person_header_value(request.environ, token)
    if person:
        headers[PERSON_HEADER] = person
    return headers


class _LimitedInput:
    """File-like view of ``wsgi.input`` that yields exactly ``length`` bytes."""

    def __init__(self, stream, length):
        self.stream = stream
        self.remaining = length

    def read(self, size=-1):
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.stream.read(size)
        self.remaining -= len(data)
        return data


def _request_body(request):
    """(body, content length) streaming straight from the WSGI input."""
    length = request.content_length
    stream = request.environ["wsgi.input"]
    if length:
        return _LimitedInput(stream, length), length
    # waitress marks every request's input as terminated, GETs included: only a request
    # that came chunked has a body here. (Sending a GET upstream with an empty chunked
    # body cost Jupyter ~0.4 ms per call.)
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if chunked and request.environ.get("wsgi.input_terminated"):
        # Chunked upload the server has de-chunked for us: stream it chunked again.
        return iter(lambda: stream.read(CHUNK_SIZE), b""), None
    return None, 0


class StreamingBody:
    """WSGI app_iter relaying the notebook's answer chunk by chunk."""

    def __init__(self, upstream):
        self.upstream = upstream

    def __iter__(self):
        yield from self.upstream.stream(CHUNK_SIZE, decode_content=False)

    def close(self):
        # A partly read answer must not go back to the pool with bytes pending.
        if not self.upstream.isclosed():
            self.upstream.close()
        self.upstream.release_conn()


#: Never compressed on the fly (BREACH: a page carries the ``_xsrf`` token and echoes the URL; an
#: event stream must reach the browser event by event).
NEVER_COMPRESSED = frozenset({"text/html", "application/xhtml+xml", "text/event-stream"})
#: Compressed on the fly when large: JSON (contents API, notebooks), text and script files.
COMPRESSED_TYPES = frozenset({"application/json", "application/x-ipynb+json", "application/javascript",
                              "image/svg+xml", "application/xml"})


def on_the_fly_coding(request, upstream):
    """``br`` or ``gzip`` for a relayed answer worth compressing, else None.

    A 200 to a GET without ``Range``, not already encoded nor marked ``no-transform``, of a text or
    JSON type other than :data:`NEVER_COMPRESSED`, of at least
    :data:`~pyramid_notebook.relays.compress.ON_THE_FLY_MIN_SIZE` bytes (or of unknown length: a
    stream), to a browser that accepts the coding.
    """
    if request.method != "GET" or "Range" in request.headers or upstream.status != 200:
        return None
    if upstream.headers.get("Content-Encoding") or "no-transform" in upstream.headers.get("Cache-Control", ""):
        return None
    content_type = upstream.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in NEVER_COMPRESSED or not (content_type.startswith("text/") or content_type in COMPRESSED_TYPES
                                                or content_type.endswith("+json")):
        return None
    if upstream.length_remaining is not None and upstream.length_remaining < ON_THE_FLY_MIN_SIZE:
        return None
    codings = accepted_codings(request.headers.get("Accept-Encoding"))
    return codings[0] if codings else None


def _compressed_headers(headerlist, coding):
    """The answer's headers once its body is compressed: no length, the coding, Vary, a weak ETag."""
    out, vary = [], []
    for name, value in headerlist:
        lower = name.lower()
        if lower == "content-length":
            continue
        if lower == "vary":
            vary.append(value)
            continue
        if lower == "etag" and not value.startswith("W/"):
            value = "W/" + value  # another representation: no longer byte-for-byte Jupyter's
        out.append((name, value))
    vary = [v.strip() for value in vary for v in value.split(",") if v.strip()]
    if "accept-encoding" not in (v.lower() for v in vary):
        vary.append("Accept-Encoding")
    out += [("Content-Encoding", coding), ("Vary", ", ".join(vary))]
    return out


#: ``max-age`` from which a relayed answer counts as a static file version (Jupyter's ``?v=`` files
#: get ten years, its hashed bundles ``immutable``): compressed once into the cache, not per request.
STATIC_MAX_AGE = 86400
#: Larger static answers are streamed as before: one is read whole into memory to be hashed.
STATIC_MAX_SIZE = 16 * 1024 * 1024


def static_version(upstream) -> bool:
    """True for an answer Jupyter marks as a long-lived static file version, of a known size."""
    length = upstream.length_remaining
    if length is None or length > STATIC_MAX_SIZE:
        return False
    cache_control = upstream.headers.get("Cache-Control", "").lower()
    if "immutable" in cache_control:
        return True
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name == "max-age" and value.strip().isdigit() and int(value) >= STATIC_MAX_AGE:
            return "private" not in cache_control and "no-store" not in cache_control
    return False


def _cached_static(request, upstream, status, headerlist):
    """The answer's compressed copy from the site's cache, or None (not cacheable, no cache).

    Compressing a 2.5 MB bundle on the fly costs about 0.1 s of CPU per request, which loopback
    throughput shows (a fifth of direct) and every user pays; read whole (loopback), it is
    compressed once per distinct content (:meth:`~pyramid_notebook.relays.compress.CompressCache.relayed`).
    """
    cache = cache_for(request.registry) if getattr(request, "registry", None) is not None else None
    if cache is None or not static_version(upstream):
        return None
    try:
        data = upstream.read(decode_content=False)
    except urllib3.exceptions.HTTPError as e:
        StreamingBody(upstream).close()
        raise UpstreamError(str(e)) from e
    upstream.release_conn()
    coding, path = cache.relayed(data, request.headers.get("Accept-Encoding"))
    if path is None:  # too small or large, or a full cache: as it came
        return Response(status=status, headerlist=headerlist, app_iter=[data])
    headerlist = _compressed_headers(headerlist, coding) + [("Content-Length", str(os.path.getsize(path)))]
    f = open(path, "rb")
    wrapper = request.environ.get("wsgi.file_wrapper")  # sendfile where the server has it
    return Response(status=status, headerlist=headerlist,
                    app_iter=wrapper(f, CHUNK_SIZE) if wrapper else FileIter(f, CHUNK_SIZE))


class CompressedBody:
    """WSGI app_iter compressing a relayed answer as it streams (see :func:`on_the_fly_coding`)."""

    def __init__(self, body, coding):
        self.body = body
        self.coding = coding

    def __iter__(self):
        compressor = StreamCompressor(self.coding)
        for chunk in self.body:
            data = compressor.compress(chunk)
            if data:
                yield data
        yield compressor.finish()

    def close(self):
        self.body.close()


def proxy_request(request, port: int, token: str, host: str = "127.0.0.1") -> Response:
    """Forward ``request`` to the notebook on ``host:port`` and return its streamed answer.

    ``host`` is the context's ``http_host`` (the hub's proxy) or 127.0.0.1 for a local notebook.

    Raises :class:`UpstreamError` if the notebook does not answer.
    """
    body, length = _request_body(request)
    headers = upstream_headers(request, port, token, host)
    if length is not None and (length or request.method in ("POST", "PUT", "PATCH")):
        headers["Content-Length"] = str(length)
    pool = pool_for(host, port)
    try:
        upstream = pool.urlopen(
            request.method, request.path_qs, body=body, headers=headers, redirect=False, retries=False,
            preload_content=False, decode_content=False, assert_same_host=False, timeout=TIMEOUT,
            chunked=length is None,
        )
    except urllib3.exceptions.HTTPError as e:
        drop_pool(host, port)  # the notebook is gone or broken: its idle sockets are too
        raise UpstreamError(str(e)) from e

    drop = HOP_BY_HOP | _connection_tokens(upstream.headers.get("Connection", ""))
    headerlist = [(k, v) for k, v in upstream.headers.items() if k.lower() not in drop]
    status = f"{upstream.status} {upstream.reason or ''}".strip()
    coding = on_the_fly_coding(request, upstream)
    if coding is not None:
        cached = _cached_static(request, upstream, status, headerlist)
        if cached is not None:
            return cached
        headerlist = _compressed_headers(headerlist, coding)
    if request.method == "HEAD":
        StreamingBody(upstream).close()
        app_iter = []
    elif coding is not None:
        app_iter = CompressedBody(StreamingBody(upstream), coding)
    elif upstream.length_remaining is not None and upstream.length_remaining <= SMALL_BODY:
        # Most API answers are small: read them whole, so the web server sends one buffer
        # instead of driving a generator (a measurable share of a small call's time).
        try:
            app_iter = [upstream.read(decode_content=False)]
        except urllib3.exceptions.HTTPError as e:
            StreamingBody(upstream).close()
            raise UpstreamError(str(e)) from e
        upstream.release_conn()
    else:
        app_iter = StreamingBody(upstream)
    return Response(status=status, headerlist=headerlist, app_iter=app_iter)
