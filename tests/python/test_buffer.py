# SPDX-License-Identifier: MIT
# test_buffer.py: Buffer: the buffer protocol (writable memoryview,
# numpy.frombuffer without a copy), exports that keep it alive and forbid
# its release, refs/retain/release, buffer_at, the finalizer, Heap.close
# releasing what is left. Large buffers (> 32 KiB) are counted exactly by
# the daemon's large_objects, which is how a reference that was not
# released shows.
import errno
import gc
import threading

import numpy as np
import pytest

import goshm

BIG = 64 * 1024


def pattern(seed, n):
    return ((seed * 131 + 1 + 7 * np.arange(n, dtype=np.int64)) & 0xFF).astype(np.uint8)


def test_memoryview_and_numpy_share_the_bytes(heap):
    b = heap.buf_alloc(1000)
    assert isinstance(b, goshm.Buffer)
    assert len(b) == b.size == 1000
    assert b.offset > 0 and b.offset % 16 == 0
    assert b.heap is heap
    assert not b.closed
    mv = memoryview(b)
    assert not mv.readonly and mv.nbytes == 1000 and mv.format == "B"
    mv[:] = pattern(1, 1000).tobytes()
    assert bytes(b) == pattern(1, 1000).tobytes()
    a = np.frombuffer(b, dtype=np.uint8)
    assert a.flags.writeable
    a[:] = pattern(2, 1000)        # written through numpy ...
    assert mv.tobytes() == pattern(2, 1000).tobytes()   # ... seen through the memoryview: one memory
    f = np.frombuffer(b, dtype=np.float64, count=125)
    f[:] = np.arange(125) * 0.5
    assert np.array_equal(np.frombuffer(mv, dtype=np.float64, count=125), np.arange(125) * 0.5)
    # The exports pin the reference.
    with pytest.raises(BufferError):
        b.close()
    assert not b.closed
    mv.release()
    with pytest.raises(BufferError):
        b.release()            # numpy's arrays still hold exports
    del a, f
    gc.collect()
    b.close()
    assert b.closed
    b.close()                  # idempotent
    b.release()
    with pytest.raises(ValueError):
        memoryview(b)
    with pytest.raises(ValueError):
        b.refs
    with pytest.raises(ValueError):
        b.retain()
    assert "released" in repr(b)


def test_zero_and_odd_sizes(heap):
    for n in (0, 1, 15, 16, 17, 4095, 32 * 1024, 32 * 1024 + 1, 200000):
        with heap.buf_alloc(n) as b:
            assert len(b) == n
            mv = memoryview(b)
            assert mv.nbytes == n
            if n:
                mv[:] = pattern(n, n).tobytes()
                assert np.array_equal(np.frombuffer(b, dtype=np.uint8), pattern(n, n))
            mv.release()
        assert b.closed


def test_refs_retain_release(heap):
    b = heap.buf_alloc(100)
    assert b.refs == 1
    c = b.retain()
    assert c is not b and isinstance(c, goshm.Buffer)
    assert (c.offset, c.size) == (b.offset, b.size)
    assert b.refs == c.refs == 2
    memoryview(b)[:3] = b"abc"
    assert bytes(memoryview(c)[:3]) == b"abc"
    b.close()
    assert c.refs == 1
    c.close()


def test_buffer_at(heap):
    for n in (0, 1, 100, 4000, 40000, 100001):
        b = heap.buf_alloc(n)
        np.frombuffer(b, dtype=np.uint8)[:] = pattern(n + 3, n)
        c = heap.buffer_at(b.offset)
        assert c.size == n     # the length travels in the buffer itself
        assert c.refs == 2
        assert np.array_equal(np.frombuffer(c, dtype=np.uint8), pattern(n + 3, n))
        b.close()
        assert c.refs == 1
        c.close()


def test_buffer_at_bad_offsets(heap):
    b = heap.buf_alloc(256)
    for off in (0, 1 << 60, b.offset + 16):
        with pytest.raises(OSError) as e:
            heap.buffer_at(off)
        assert e.value.errno == errno.EINVAL
    off = b.offset
    b.close()
    with pytest.raises(OSError) as e:
        heap.buffer_at(off)    # freed: no longer a live buffer
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OverflowError):
        heap.buffer_at(-1)
    with pytest.raises(TypeError):
        heap.buffer_at("1")


def test_alloc_errors(heap):
    with pytest.raises(ValueError):
        heap.buf_alloc(-1)
    with pytest.raises(OSError) as e:
        heap.buf_alloc(1 << 40)    # larger than the 256 MiB heap
    assert e.value.errno == errno.ENOMEM


def test_finalizer_releases(daemon, heap):
    base = daemon.stats()["large_objects"]
    bufs = [heap.buf_alloc(BIG) for _ in range(40)]
    daemon.wait_large(base + 40)
    del bufs
    gc.collect()
    daemon.wait_large(base)
    # A memoryview keeps its Buffer (and the reference) alive.
    b = heap.buf_alloc(BIG)
    mv = memoryview(b)
    del b
    gc.collect()
    daemon.wait_large(base + 1)
    mv[:4] = b"live"
    assert bytes(mv[:4]) == b"live"
    del mv
    gc.collect()
    daemon.wait_large(base)


def test_with_block(daemon, heap):
    with heap.buf_alloc(BIG) as b:
        memoryview(b)[0] = 7
        assert b.refs == 1
    assert b.closed
    daemon.wait_large(0)


def test_heap_close_releases_buffers(daemon):
    h = goshm.attach(daemon.sock)
    b = h.buf_alloc(BIG)
    c = b.retain()
    daemon.wait_large(1)
    mv = memoryview(c)
    with pytest.raises(BufferError):
        h.close()              # an export pins the mapping: nothing is done
    assert not h.closed and not b.closed
    mv.release()
    h.close()
    assert b.closed and c.closed
    with pytest.raises(ValueError):
        memoryview(b)
    daemon.wait_large(0)


def test_threads(daemon, heap):
    errors = []

    def work(t):
        try:
            for i in range(300):
                n = 1 + (i * 7919 + t * 104729) % 50000
                with heap.buf_alloc(n) as b:
                    a = np.frombuffer(b, dtype=np.uint8)
                    a[:] = pattern(i + t, n)
                    c = heap.buffer_at(b.offset)
                    ok = np.array_equal(np.frombuffer(c, dtype=np.uint8), pattern(i + t, n))
                    del a
                    c.close()
                    if not ok:
                        errors.append((t, i))
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
