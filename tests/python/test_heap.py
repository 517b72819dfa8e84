# SPDX-License-Identifier: MIT
# test_heap.py: goshm.attach and Heap: identity, the with-block, close,
# errors as OSError subclasses, the socket from $GOSHM_SOCKET.
import errno
import pathlib

import pytest

import goshm


def test_attach_heap_id_close(daemon):
    h1 = goshm.attach(daemon.sock)
    h2 = goshm.attach(socket=pathlib.Path(daemon.sock))
    assert isinstance(h1, goshm.Heap)
    assert isinstance(h1.heap_id, int) and h1.heap_id != 0
    assert h1.heap_id == h2.heap_id
    assert f"{h1.heap_id:016x}" in repr(h1)
    h1.close()
    assert h1.closed and not h2.closed
    h1.close()  # idempotent
    with pytest.raises(ValueError):
        h1.heap_id
    with pytest.raises(ValueError):
        h1.buf_alloc(10)
    with pytest.raises(ValueError):
        h1.channel("py.x", 4)
    with pytest.raises(ValueError):
        h1.name_get("py.x")
    with h2 as same:
        assert same is h2
    assert h2.closed
    assert "closed" in repr(h2)


def test_attach_from_environment(daemon, monkeypatch):
    monkeypatch.setenv("GOSHM_SOCKET", daemon.sock)
    with goshm.attach() as h, goshm.attach(daemon.sock) as h2:
        assert h.heap_id == h2.heap_id


def test_attach_no_daemon(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        goshm.attach(str(tmp_path / "nobody.sock"))
    assert e.value.errno == errno.ENOENT
    assert "nobody.sock" in str(e.value)


def test_attach_refused(tmp_path):
    # A socket file nobody listens on: a daemon that died.
    import socket
    path = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.close()
    with pytest.raises(ConnectionRefusedError) as e:
        goshm.attach(path)
    assert e.value.errno == errno.ECONNREFUSED


def test_types_are_not_constructible():
    for t in (goshm.Heap, goshm.Buffer, goshm.Channel):
        with pytest.raises(TypeError):
            t()


def test_version():
    assert goshm.version() == goshm.VERSION
    major, minor, patch = (int(x) for x in goshm.__version__.split("."))
    assert goshm.VERSION == major * 10000 + minor * 100 + patch
