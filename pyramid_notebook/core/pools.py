"""Let go of idle pooled connections to notebooks that stopped.

urllib3 keeps idle keep-alive connections in each pool until one is taken again. When a
notebook stops, its end of those connections closes and ours sits in ``CLOSE_WAIT``, an
open file descriptor, until the same port is used again: four or five per stopped
notebook, for ever. :func:`close_idle` takes them out of the pools (all of one address,
or the ones whose peer closed) and closes them.
"""


def _take_idle(pool, only_dead: bool) -> list:
    """Take idle connections out of ``pool``'s queue (all, or those whose peer closed).

    Under the queue's own lock, so no request thread can take one meanwhile; their
    slots become ``None``, which urllib3 answers with a fresh connection.
    """
    queue = getattr(pool, "pool", None)
    if queue is None:  # a closed pool
        return []
    taken = []
    with queue.mutex:
        for index, conn in enumerate(queue.queue):
            # A readable idle socket has seen the peer's FIN (or stray bytes): unusable either way.
            if conn is not None and (not only_dead or (conn.sock is not None and not conn.is_connected)):
                taken.append(conn)
                queue.queue[index] = None
    return taken


def close_idle(manager, only_dead: bool = True, host=None, port=None) -> int:
    """Close idle connections of a ``urllib3.PoolManager``; return how many.

    :param only_dead: only those whose peer closed its end (else every idle one).
    :param host: with ``port``, only the pool of that address.
    """
    if manager is None:
        return 0
    closed = 0
    for key in manager.pools.keys():
        if host is not None and (key.key_host, key.key_port) != (host.lower(), int(port)):
            continue
        try:
            pool = manager.pools[key]
        except KeyError:  # evicted meanwhile (and closed by the manager)
            continue
        for conn in _take_idle(pool, only_dead):
            conn.close()
            closed += 1
    return closed
