# SPDX-License-Identifier: MIT
# test_names.py: Heap.name_set/name_get/name_del: a name seen from another
# handle (another client slot), KeyError for a missing name, OSError for a
# taken or bad name.
import errno

import numpy as np
import pytest

import goshm


def test_name_round_trip(daemon, heap):
    b = heap.buf_alloc(4096)
    np.frombuffer(b, dtype=np.uint8)[:] = np.arange(4096) % 251
    heap.name_set("py.names.table", b)          # a Buffer names its offset
    assert heap.name_get("py.names.table") == b.offset
    with pytest.raises(FileExistsError) as e:
        heap.name_set("py.names.table", b.offset)
    assert e.value.errno == errno.EEXIST
    # Another attachment (another client slot) finds it and reads the bytes.
    with goshm.attach(daemon.sock) as h2:
        off = h2.name_get("py.names.table")
        assert off == b.offset
        with h2.buffer_at(off) as c:
            assert c.refs == 2
            assert np.array_equal(np.frombuffer(c, dtype=np.uint8), np.arange(4096) % 251)
        h2.name_del("py.names.table")
    with pytest.raises(KeyError) as e:
        heap.name_get("py.names.table")
    assert e.value.args == ("py.names.table",)
    with pytest.raises(KeyError):
        heap.name_del("py.names.table")
    # A name holds no reference: the buffer went on living through b alone.
    assert b.refs == 1
    heap.name_set("py.names.int", b.offset + 64)  # any offset inside the heap
    assert heap.name_get("py.names.int") == b.offset + 64
    heap.name_del("py.names.int")
    b.close()


def test_many_names(heap):
    b = heap.buf_alloc(16)
    names = [f"py.many.{i}" for i in range(500)]
    for i, n in enumerate(names):
        heap.name_set(n, b.offset + i % 16)
    for i, n in enumerate(names):
        assert heap.name_get(n) == b.offset + i % 16
    for n in names:
        heap.name_del(n)
    for n in names[::50]:
        with pytest.raises(KeyError):
            heap.name_get(n)
    b.close()


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 64, "tab\there", "caf\u00e9", "nl\n"])
def test_bad_names(heap, bad):
    with heap.buf_alloc(16) as b:
        with pytest.raises(OSError) as e:
            heap.name_set(bad, b)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            heap.name_get(bad)
        assert e.value.errno == errno.EINVAL and not isinstance(e.value, KeyError)
        with pytest.raises(OSError) as e:
            heap.name_del(bad)
        assert e.value.errno == errno.EINVAL


def test_longest_name(heap):
    with heap.buf_alloc(16) as b:
        name = "n" * 63
        heap.name_set(name, b)
        assert heap.name_get(name) == b.offset
        heap.name_del(name)


def test_bad_offsets(heap):
    for off in (0, 1 << 60):
        with pytest.raises(OSError) as e:
            heap.name_set("py.names.bad", off)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(KeyError):
        heap.name_get("py.names.bad")
    with pytest.raises(TypeError):
        heap.name_set("py.names.bad", "12")
    with pytest.raises(TypeError):
        heap.name_get(b"py.names.bad")
    with pytest.raises(ValueError):
        heap.name_get("embedded\0nul")
