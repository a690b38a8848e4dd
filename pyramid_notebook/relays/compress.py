"""Static notebook files brotli- or gzip-compressed once per file version, then sent from disk.

A Notebook 7 page loads some 8 MB of JavaScript, CSS and fonts; ``notebook_core.*.js`` alone is
2.5 MB, 0.48 MB with brotli. Jupyter (and JupyterHub's proxy) send them as they are. The site
sends them (:mod:`pyramid_notebook.relays.static`, or nginx in accel mode) from a cache folder the
site owns (``pyramid_notebook.compress_cache``, by default ``<notebook_folder>/.compress-cache``;
never inside site-packages), where each file is compressed once per *version*: its real path,
inode, size and modification time. A new Jupyter or a deploy makes new versions; the old ones are
simply never asked for again.

* gzip (the standard library's, level 6: 0.1 s for the 2.5 MB bundle) is made on the first
  request that accepts it, so even the first visit after a deploy gets compressed bytes.
* brotli (the ``brotli`` package at quality 11: a sixth smaller than gzip, but ten seconds of
  CPU for that bundle) is made in one low-priority background thread per process; requests get
  gzip until it is there.

Each encoding is a representation of its own for HTTP: ``Vary: Accept-Encoding`` on every answer
of a compressible file, an ``ETag`` per encoding (``"<version>"``, ``"<version>-br"``,
``"<version>-gz"``), ``Content-Length``, ranges and ``If-None-Match`` on the compressed bytes,
``Last-Modified`` the original file's (the cached copy gets its mtime).
"""
import concurrent.futures
import contextlib
import fcntl
import gzip
import hashlib
import logging
import os
import sysconfig
import threading

logger = logging.getLogger(__name__)

#: Codings in order of preference, and the suffix of their cached copies.
SUFFIXES = {"br": ".br", "gzip": ".gz"}
#: Short names in ETags.
ETAG_TAGS = {"br": "br", "gzip": "gz"}
#: Smaller files are sent as they are: headers and a round trip cost more than the bytes saved.
MIN_SIZE = 1024
#: Larger files are sent as they are: compressing them would take long and they are not page assets.
MAX_SIZE = 64 * 1024 * 1024
BROTLI_QUALITY = 11
GZIP_LEVEL = 6
#: Content types worth compressing (fonts as woff/woff2, images but SVG are compressed already).
COMPRESSIBLE_PREFIXES = ("text/",)
COMPRESSIBLE_TYPES = frozenset({
    "application/javascript", "application/x-javascript", "application/ecmascript", "application/json",
    "application/manifest+json", "application/xml", "application/wasm", "image/svg+xml", "image/x-icon",
    "image/vnd.microsoft.icon", "font/ttf", "font/otf", "application/x-font-ttf", "application/x-font-otf",
    "application/font-sfnt", "application/vnd.ms-fontobject", "application/x-ipynb+json",
})
#: Files Jupyter sends as ``application/octet-stream`` (Python's table does not know them) that
#: compress well: source maps (JSON) and uncompressed font formats.
COMPRESSIBLE_EXTENSIONS = frozenset({".map", ".ttf", ".otf", ".eot", ".wasm"})
#: Name of the default cache folder inside the notebook folder (a dot name: never a user's folder).
DEFAULT_FOLDER = ".compress-cache"


def compressible(content_type: str, file_path: str = "") -> bool:
    """True for a file whose bytes shrink when compressed (text, JavaScript, JSON, SVG, ...)."""
    base = (content_type or "").split(";")[0].strip().lower()
    if base.startswith(COMPRESSIBLE_PREFIXES) or base in COMPRESSIBLE_TYPES or base.endswith(("+json", "+xml")):
        return True
    return os.path.splitext(file_path)[1].lower() in COMPRESSIBLE_EXTENSIONS


def accepted_codings(header) -> list:
    """The codings of :data:`SUFFIXES` an ``Accept-Encoding`` header allows, best first.

    The client's q-values rank them; on a tie brotli comes first. ``*`` stands for any coding not
    named; ``q=0`` refuses one. No header: none (RFC 9110 allows any, but browsers always send it
    and an old client is better served with the file as it is).
    """
    if not header:
        return []
    qualities = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        qualities[name] = q
    order = list(SUFFIXES)
    chosen = []
    for coding in order:
        q = qualities.get(coding, qualities.get("x-gzip") if coding == "gzip" else None)
        if q is None:
            q = qualities.get("*", 0.0)
        if q > 0:
            chosen.append((-q, order.index(coding), coding))
    return [coding for _, _, coding in sorted(chosen)]


def default_folder(notebook_folder: str) -> str:
    """The cache folder used when ``pyramid_notebook.compress_cache`` is not set."""
    return os.path.join(notebook_folder, DEFAULT_FOLDER)


def inside_site_packages(folder: str) -> bool:
    """True if ``folder`` is inside this interpreter's package folders (never a cache's place)."""
    real = os.path.realpath(folder)
    for name in ("purelib", "platlib"):
        root = os.path.realpath(sysconfig.get_paths()[name])
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


class CompressCache:
    """Compressed copies of static files under ``folder``, one per file version and coding."""

    def __init__(self, folder: str):
        if inside_site_packages(folder):
            raise ValueError(f"the compression cache {folder!r} must not be inside site-packages")
        self.folder = os.path.abspath(folder)
        self._pending = set()
        self._lock = threading.Lock()
        self._executor = None
        self._executor_pid = None

    # --- what a request gets -------------------------------------------------------------

    @staticmethod
    def version(file_path: str, stat=None) -> str:
        """A short name of this version of the file: changes whenever the file is replaced or edited."""
        stat = stat or os.stat(file_path)
        key = f"{os.path.realpath(file_path)}\0{stat.st_dev}\0{stat.st_ino}\0{stat.st_size}\0{stat.st_mtime_ns}"
        return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]

    def cached_path(self, version: str, coding: str) -> str:
        """Where the copy of ``version`` compressed with ``coding`` is (or will be) kept."""
        return os.path.join(self.folder, version[:2], version + SUFFIXES[coding])

    def choose(self, file_path: str, accept_encoding):
        """``(coding or None, path to send, version)`` for a request's ``Accept-Encoding``.

        The best accepted coding already cached; else gzip, made now, if accepted. A missing
        brotli copy is queued for the background thread. ``None``: send the file as it is.
        """
        stat = os.stat(file_path)
        version = self.version(file_path, stat)
        if not MIN_SIZE <= stat.st_size <= MAX_SIZE:
            return None, file_path, version
        codings = accepted_codings(accept_encoding)
        for coding in codings:
            cached = self.cached_path(version, coding)
            if os.path.isfile(cached):
                return coding, cached, version
            if coding == "br":  # preferred but not made yet: gzip (or the file) until it is
                self._queue(version, "br", lambda: self.make(file_path, version, "br"))
        if "gzip" in codings:
            try:
                return "gzip", self.make(file_path, version, "gzip"), version
            except OSError as e:  # a full or read-only cache: send the file as it is
                logger.warning("Could not compress %s into %s: %s", file_path, self.folder, e)
        return None, file_path, version

    # --- making copies -------------------------------------------------------------------

    def make(self, file_path: str, version: str, coding: str) -> str:
        """Compress ``file_path`` into the cache (once: other threads and processes wait for it)."""
        def read():
            with open(file_path, "rb") as f:
                data = f.read()
                stat = os.fstat(f.fileno())
            if self.version(file_path, stat) != version:
                raise OSError(f"{file_path} changed while it was being compressed")
            # The original's modification time: Last-Modified stays the file's own.
            return data, (stat.st_atime_ns, stat.st_mtime_ns)

        return self._store(version, coding, read)

    def relayed(self, data: bytes, accept_encoding) -> tuple:
        """``(coding, path)`` of a compressed copy of a relayed answer's ``data``, or ``(None, None)``.

        For static files a notebook server sends (the JupyterHub backend's, which are not on this
        machine's disk): each is compressed once, not on every request. The copy is named by the
        hash of the bytes themselves, so an answer is only ever sent as the compressed form of
        exactly its own bytes, whichever notebook server sent them first (one user's server cannot
        put its bytes into another user's page). Otherwise as :meth:`choose`: the best accepted
        coding already made, else gzip now and brotli queued.
        """
        if not MIN_SIZE <= len(data) <= MAX_SIZE:
            return None, None
        version = "r" + hashlib.sha256(data).hexdigest()[:31]
        codings = accepted_codings(accept_encoding)
        for coding in codings:
            cached = self.cached_path(version, coding)
            if os.path.isfile(cached):
                return coding, cached
            if coding == "br":
                self._queue(version, "br", lambda: self._store(version, "br", lambda: (data, None)))
        if "gzip" in codings:
            try:
                return "gzip", self._store(version, "gzip", lambda: (data, None))
            except OSError as e:  # a full or read-only cache: send the answer as it is
                logger.warning("Could not compress a relayed answer into %s: %s", self.folder, e)
        return None, None

    def _store(self, version: str, coding: str, read) -> str:
        """Write ``read()``'s bytes compressed with ``coding`` as ``version``'s copy, once (file-locked)."""
        target = self.cached_path(version, coding)
        if os.path.isfile(target):
            return target
        # 0750: nginx workers in the site's group send these copies in accel mode (as users' files).
        os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
        with open(target + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process compressing the same bytes: wait for it
            if os.path.isfile(target):
                return target
            data, times = read()
            if coding == "br":
                import brotli

                packed = brotli.compress(data, quality=BROTLI_QUALITY)
            else:
                packed = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
            tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                with open(tmp, "wb") as out:
                    out.write(packed)
                if times is not None:
                    os.utime(tmp, ns=times)
                os.replace(tmp, target)  # atomic: a reader sees the whole copy or none
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target + ".lock")
        return target

    def _queue(self, version: str, coding: str, make) -> None:
        """Run ``make()``, which makes ``version``'s ``coding`` copy, in the background thread (once)."""
        key = (version, coding)
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
            if self._executor is None or self._executor_pid != os.getpid():  # none yet, or forked
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="pyramid_notebook compress", initializer=_lower_priority)
                self._executor_pid = os.getpid()
            self._executor.submit(self._background, version, coding, make)

    def _background(self, version, coding, make):
        try:
            make()
        except Exception as e:  # requests get gzip meanwhile; the next one queues it again
            logger.warning("Could not compress %s with %s into %s: %s", version, coding, self.folder, e)
        finally:
            with self._lock:
                self._pending.discard((version, coding))

    def wait_idle(self, timeout=120.0) -> bool:
        """Wait until no background compression is queued (tests, benchmarks); True if none is."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.02)
        return False


def _lower_priority(nice=10):
    """The background thread's nice value: compressing never slows the site's own requests."""
    with contextlib.suppress(OSError, AttributeError):
        # On Linux a thread id is a process id for setpriority: only this thread is reniced.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


#: The newest :func:`precompress` of this process; an older one stops at its next file.
_precompress_latest = [None]


def precompress(cache, groups, nice=19) -> threading.Thread:
    """Compress the files of ``groups()`` (a callable returning lists of paths, the most wanted first:
    finding them may take a moment too) into ``cache``, gzip for every group, then brotli, in a daemon
    thread at the lowest priority; returns the thread.

    For the files a notebook page loads, at site start: the first click after a deploy never pays a
    first compression. Nice 19 rather than an idle scheduling class: the thread holds the GIL at
    times, and the site's threads must never wait for one that gets no CPU. Copies already made
    cost a stat. Only the newest call of a process goes on (sites made one after another in one
    process, as in tests, never pile up threads).
    """
    def run():
        _lower_priority(nice)
        found = []
        with contextlib.suppress(Exception):
            found = list(groups())
        codings = ["gzip"] + (["br"] if _has_brotli() else [])
        # gzip for every group first (a tenth of a second for the largest bundle, half a second for the
        # whole folder), then brotli (seconds per bundle): a first click right after the start finds a
        # copy of every file it asks for, and never waits for this thread's lock on a file's gzip copy.
        for paths, coding in ((paths, coding) for coding in codings for paths in found):
            for path in paths:
                if _precompress_latest[0] is not thread or not os.path.isdir(os.path.dirname(cache.folder)):
                    return  # a newer site's, or this site's folder is gone (a test's, removed)
                try:
                    stat = os.stat(path)
                    if MIN_SIZE <= stat.st_size <= MAX_SIZE:
                        cache.make(path, cache.version(path, stat), coding)
                except Exception as e:  # noqa: BLE001 - requests compress it themselves then
                    logger.warning("Could not compress %s into %s at start: %s", path, cache.folder, e)

    thread = threading.Thread(target=run, name="pyramid_notebook precompress", daemon=True)
    _precompress_latest[0] = thread
    thread.start()
    return thread


def _has_brotli() -> bool:
    import importlib.util

    return importlib.util.find_spec("brotli") is not None


def cache_for(registry):
    """The site's :class:`CompressCache`, or None when ``pyramid_notebook.compress_cache = off``."""
    cache = getattr(registry, "pyramid_notebook_compress_cache", False)
    if cache is False:
        settings = getattr(registry, "pyramid_notebook_settings", None)
        folder = getattr(settings, "compress_cache", "") if settings is not None else "off"
        if folder == "off":
            cache = None
        else:
            cache = CompressCache(folder or default_folder(settings.notebook_folder))
        registry.pyramid_notebook_compress_cache = cache
    return cache


def negotiate(request, file_path: str, content_type: str, headers: dict):
    """``(path to send, headers)`` for a static file: its compressed copy when the request accepts one.

    Adds ``Vary``, ``ETag`` and, for a compressed copy, ``Content-Encoding``. Files of other types,
    or a site without a cache, are sent as they are with their headers unchanged.
    """
    registry = getattr(request, "registry", None)  # a plain WebOb request (no Pyramid site) has none
    cache = cache_for(registry) if registry is not None else None
    if cache is None or not compressible(content_type, file_path):
        return file_path, headers
    coding, path, version = cache.choose(file_path, request.headers.get("Accept-Encoding"))
    headers = dict(headers, Vary="Accept-Encoding")
    if coding is None:
        headers["ETag"] = f'"{version}"'
    else:
        headers["ETag"] = f'"{version}-{ETAG_TAGS[coding]}"'
        headers["Content-Encoding"] = coding
    return path, headers


#: Relayed answers (:mod:`pyramid_notebook.relays.http`) are compressed on the fly from this size
#: on: a large notebook through the contents API, a big text file. Below it the bytes saved do not
#: pay for the CPU (most API answers are a few hundred bytes).
ON_THE_FLY_MIN_SIZE = 16 * 1024
#: Faster settings than for cached files: this runs on every such answer.
ON_THE_FLY_BROTLI_QUALITY = 5


class StreamCompressor:
    """Compress a relayed answer chunk by chunk; each chunk is flushed so nothing waits in the codec."""

    def __init__(self, coding: str):
        self.coding = coding
        if coding == "br":
            import brotli

            self._br = brotli.Compressor(quality=ON_THE_FLY_BROTLI_QUALITY)
        else:
            import zlib

            self._gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip header and trailer

    def compress(self, data: bytes) -> bytes:
        """The compressed bytes for ``data``, flushed (a browser can decode all it got so far)."""
        if self.coding == "br":
            return self._br.process(data) + self._br.flush()
        import zlib

        return self._gz.compress(data) + self._gz.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The end of the compressed stream."""
        return self._br.finish() if self.coding == "br" else self._gz.flush()
