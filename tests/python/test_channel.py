# SPDX-License-Identifier: MIT
# test_channel.py: Channel: a Buffer's reference moving through send and
# recv, plain offsets, timeouts and the exceptions they raise, fileno with
# selectors and asyncio, the GIL released while blocked, signals
# interrupting a wait, fan-out with retain, what unlink and close release.
import asyncio
import errno
import selectors
import signal
import threading
import time

import numpy as np
import pytest

import goshm

BIG = 64 * 1024


def pattern(seed, n):
    return ((seed * 131 + 1 + 7 * np.arange(n, dtype=np.int64)) & 0xFF).astype(np.uint8)


def filled(heap, n, seed):
    b = heap.buf_alloc(n)
    np.frombuffer(b, dtype=np.uint8)[:] = pattern(seed, n)
    return b


def test_send_moves_the_reference(daemon, heap):
    ch = heap.channel("py.ch.move", 8)
    assert ch.name == "py.ch.move" and not ch.closed
    b = filled(heap, 5000, 1)
    off = b.offset
    ch.send(b)
    assert b.closed                     # the reference is in the channel now
    with pytest.raises(ValueError):
        memoryview(b)
    with pytest.raises(ValueError):
        ch.send(b)
    r = ch.recv(timeout=1)
    assert isinstance(r, goshm.Buffer)
    assert (r.offset, r.size, r.refs) == (off, 5000, 1)
    assert np.array_equal(np.frombuffer(r, dtype=np.uint8), pattern(1, 5000))
    r.close()
    # An int naming a buffer a Buffer object holds moves that object's reference.
    b = filled(heap, BIG, 2)
    ch.send(b.offset)
    assert b.closed
    with ch.recv(timeout=1) as r:
        assert r.offset == b.offset and r.refs == 1
        assert np.array_equal(np.frombuffer(r, dtype=np.uint8), pattern(2, BIG))
    ch.close()
    assert ch.closed
    ch.close()
    heap.channel_unlink("py.ch.move")
    daemon.wait_large(0)


def test_plain_offsets(heap):
    with heap.channel("py.ch.plain", 16) as ch, heap.buf_alloc(256) as b:
        memoryview(b)[:] = bytes(256)
        offs = [b.offset + 32 + 16 * i for i in range(10)]   # inside b: not buffers
        for o in offs:
            ch.send(o)
        got = [ch.recv(timeout=0) for _ in offs]
        assert got == offs and all(type(o) is int for o in got)
        with pytest.raises(OSError) as e:
            ch.send(0)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            ch.send(1 << 60)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OverflowError):
            ch.send(-1)
        with pytest.raises(TypeError):
            ch.send("x")
    assert ch.closed
    heap.channel_unlink("py.ch.plain")


def test_timeouts(heap):
    with heap.channel("py.ch.time", 2) as ch, heap.buf_alloc(64) as b:
        with pytest.raises(BlockingIOError) as e:
            ch.recv(timeout=0)
        assert e.value.errno == errno.EAGAIN
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as e:
            ch.recv(timeout=0.3)
        took = time.monotonic() - t0
        assert e.value.errno == errno.ETIMEDOUT and 0.29 <= took < 3, took
        assert "py.ch.time" in str(e.value)
        ch.send(b.offset + 16)
        ch.send(b.offset + 32)
        with pytest.raises(BlockingIOError):
            ch.send(b.offset + 48, timeout=0)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            ch.send(b.offset + 48, timeout=0.1)
        assert time.monotonic() - t0 >= 0.09
        # A Buffer whose send failed keeps its reference.
        with pytest.raises(BlockingIOError):
            ch.send(b, timeout=0)
        assert not b.closed and b.refs == 1
        assert ch.recv() == b.offset + 16
        assert ch.recv(timeout=None) == b.offset + 32
        for bad in (-1, float("nan"), "1"):
            with pytest.raises((ValueError, TypeError)):
                ch.recv(timeout=bad)
    heap.channel_unlink("py.ch.time")


def test_capacity_rounds_up(heap):
    with heap.channel("py.ch.cap", 3) as ch, heap.buf_alloc(256) as b:
        for i in range(4):                  # 3 -> 4, a power of two
            ch.send(b.offset + 16 * (i + 1), timeout=0)
        with pytest.raises(BlockingIOError):
            ch.send(b.offset, timeout=0)
        for i in range(4):
            assert ch.recv(timeout=0) == b.offset + 16 * (i + 1)
    heap.channel_unlink("py.ch.cap")


def test_open_errors(heap):
    with pytest.raises(FileNotFoundError) as e:
        heap.channel("py.ch.none")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError):
        heap.channel_unlink("py.ch.none")
    for bad in ("", "a/b", "x" * 64):
        with pytest.raises(OSError) as e:
            heap.channel(bad, 4)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        heap.channel("py.ch.huge", (1 << 20) + 1)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OverflowError):
        heap.channel("py.ch.huge", 1 << 40)


def test_two_attachments(daemon, heap):
    with goshm.attach(daemon.sock) as h2:
        tx = heap.channel("py.ch.two", 4)
        rx = h2.channel("py.ch.two")        # capacity 0: it must exist
        for i in range(50):
            n = 1 + (i * 7919) % 70000
            tx.send(filled(heap, n, i), timeout=5)
            r = rx.recv(timeout=5)
            assert r.heap is h2 and r.size == n and r.refs == 1
            assert np.array_equal(np.frombuffer(r, dtype=np.uint8), pattern(i, n))
            r.close()
        with pytest.raises(ValueError):     # a Buffer of another Heap object
            rx.send(heap.buf_alloc(8))
        rx.close()
        tx.close()
        h2.channel_unlink("py.ch.two")
    heap.close()
    daemon.wait_large(0)


def test_exported_buffer_cannot_be_sent(heap):
    with heap.channel("py.ch.exp", 4) as ch:
        b = heap.buf_alloc(100)
        mv = memoryview(b)
        with pytest.raises(BufferError):
            ch.send(b)
        with pytest.raises(BufferError):
            ch.send(b.offset)
        assert not b.closed
        mv.release()
        ch.send(b)
        assert b.closed
        ch.recv(timeout=0).close()
    heap.channel_unlink("py.ch.exp")


def test_fanout_with_retain(daemon, heap):
    chans = [heap.channel(f"py.ch.fan{i}", 4) for i in range(3)]
    b = filled(heap, BIG, 9)
    for ch in chans:
        ch.send(b.retain())
    assert b.refs == 4
    b.close()
    got = [ch.recv(timeout=1) for ch in chans]
    assert {r.offset for r in got} == {b.offset}
    assert got[0].refs == 3
    for r in got:
        assert np.array_equal(np.frombuffer(r, dtype=np.uint8), pattern(9, BIG))
        r.close()
    daemon.wait_large(0)
    for i, ch in enumerate(chans):
        ch.close()
        heap.channel_unlink(f"py.ch.fan{i}")


def test_unlink_releases_messages(daemon, heap):
    ch = heap.channel("py.ch.drop", 16)
    for i in range(10):
        ch.send(filled(heap, BIG, i))
    daemon.wait_large(10)
    heap.channel_unlink("py.ch.drop")
    daemon.wait_large(10)                   # still open here: the channel lives
    ch.close()
    daemon.wait_large(0)                    # gone, and the messages' references with it


def test_heap_close_closes_channels(daemon):
    h = goshm.attach(daemon.sock)
    ch = h.channel("py.ch.hclose", 4)
    h.channel_unlink("py.ch.hclose")
    h.close()
    assert ch.closed
    with pytest.raises(ValueError):
        ch.recv(timeout=0)
    with pytest.raises(ValueError):
        ch.fileno()


def test_fileno_with_selectors(daemon, heap):
    with goshm.attach(daemon.sock) as h2:
        rx = heap.channel("py.ch.sel", 8)
        tx = h2.channel("py.ch.sel")
        assert isinstance(rx.fileno(), int) and rx.fileno() >= 0
        sel = selectors.DefaultSelector()
        sel.register(rx, selectors.EVENT_READ)
        assert sel.select(0) == []
        tx.send(filled(h2, 100, 5))
        ready = sel.select(2)
        assert [key.fileobj for key, _ in ready] == [rx]
        with rx.recv(timeout=0) as r:
            assert np.array_equal(np.frombuffer(r, dtype=np.uint8), pattern(5, 100))
        assert sel.select(0.05) == []       # drained: not readable any more
        sel.close()
        tx.close()
        rx.close()
        heap.channel_unlink("py.ch.sel")


def test_asyncio_add_reader(daemon, heap):
    n = 200
    with goshm.attach(daemon.sock) as h2:
        rx = heap.channel("py.ch.aio", 16)
        tx = h2.channel("py.ch.aio")

        def produce():
            for i in range(n):
                tx.send(filled(h2, 1 + i * 37, i), timeout=10)

        async def consume():
            loop = asyncio.get_running_loop()
            got = []
            done = loop.create_future()

            def readable():
                while True:
                    try:
                        r = rx.recv(timeout=0)
                    except BlockingIOError:
                        return
                    with r:
                        i = len(got)
                        got.append(np.array_equal(np.frombuffer(r, dtype=np.uint8), pattern(i, 1 + i * 37)))
                    if len(got) == n and not done.done():
                        done.set_result(None)

            loop.add_reader(rx.fileno(), readable)
            t = threading.Thread(target=produce)
            t.start()
            try:
                await asyncio.wait_for(done, 20)
            finally:
                loop.remove_reader(rx.fileno())
                t.join()
            return got

        got = asyncio.run(consume())
        assert got == [True] * n
        tx.close()
        rx.close()
        heap.channel_unlink("py.ch.aio")


def test_blocking_recv_releases_the_gil(daemon, heap):
    with goshm.attach(daemon.sock) as h2:
        rx = heap.channel("py.ch.gil", 4)
        tx = h2.channel("py.ch.gil")
        out = {}

        def wait():
            t0 = time.monotonic()
            r = rx.recv(timeout=10)
            out["took"] = time.monotonic() - t0
            out["size"] = r.size
            r.close()

        t = threading.Thread(target=wait)
        t.start()
        # Python code runs in this thread while the other one waits in recv.
        spins = 0
        t_end = time.monotonic() + 0.3
        while time.monotonic() < t_end:
            spins += 1
        assert spins > 1000
        assert t.is_alive()
        with pytest.raises(RuntimeError):
            rx.close()                      # busy in the other thread
        with pytest.raises(RuntimeError):
            heap.close()
        tx.send(h2.buf_alloc(77))
        t.join(10)
        assert not t.is_alive()
        assert out["size"] == 77 and 0.25 < out["took"] < 5
        tx.close()
        rx.close()
        heap.channel_unlink("py.ch.gil")


class Interrupted(Exception):
    pass


def test_signal_interrupts_recv(heap):
    def handler(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with heap.channel("py.ch.sig", 4) as ch:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            t0 = time.monotonic()
            with pytest.raises(Interrupted):
                ch.recv()                   # timeout None: for ever, but for the signal
            assert time.monotonic() - t0 < 3
            # The channel is intact.
            ch.send(heap.buf_alloc(10))
            with ch.recv(timeout=0) as r:
                assert r.size == 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    heap.channel_unlink("py.ch.sig")


def test_no_object_leaks(daemon):
    # Every path that takes a reference on a Python object gives it back:
    # the objects die when the program drops them.
    import gc
    import sys
    import weakref
    h = goshm.attach(daemon.sock)
    wh = weakref.ref(h)
    ch = h.channel("py.ch.leak", 1)
    wc = weakref.ref(ch)
    b = h.buf_alloc(10)
    wb = weakref.ref(b)
    with b as same:
        assert same is b
    c = h.buf_alloc(10)
    ch.send(h.buf_alloc(10))
    n = sys.getrefcount(c)
    for _ in range(3):
        with pytest.raises(BlockingIOError):
            ch.send(c, timeout=0)           # full: c keeps its reference
        with pytest.raises(TimeoutError):
            ch.send(c, timeout=0.01)
    assert sys.getrefcount(c) == n and not c.closed
    r = ch.recv(timeout=0)
    wr = weakref.ref(r)
    ch.send(c)
    with ch.recv() as r2:
        wr2 = weakref.ref(r2)
    with ch:
        pass
    h.channel_unlink("py.ch.leak")
    del b, c, r, r2, ch, same
    gc.collect()
    assert wb() is None and wr() is None and wr2() is None and wc() is None
    assert sys.getrefcount(h) == 2          # h and getrefcount's argument
    h.close()
    del h
    assert wh() is None
