# SPDX-License-Identifier: MIT
# test_producer.py: other processes. A C producer (producer.c) and this
# Python consumer share buffers through a channel and a name, every byte
# checked, the answer going back the other way; a Python producer process
# killed with SIGKILL while it holds buffers, whose references goshmd
# drops; and at the end the heap is empty (conftest.py).
import os
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import goshm

TABLE_SIZE = 100000


def msg_size(i):
    return 32768 + i * 7919 % 70000 if i % 10 == 9 else 1 + i * 7919 % 4096


def pattern(seed, n):
    return ((seed * 131 + 1 + 7 * np.arange(n, dtype=np.int64)) & 0xFF).astype(np.uint8)


def test_c_producer_python_consumer(daemon, heap, producer):
    count = 3000
    data = heap.channel("pyprod.data", 16)
    with subprocess.Popen([producer, daemon.sock, "pyprod", str(count)], stdout=subprocess.PIPE, text=True) as proc:
        try:
            checked = 0
            for i in range(count):
                b = data.recv(timeout=20)
                assert isinstance(b, goshm.Buffer), f"message {i}: {b!r}"
                n = msg_size(i)
                assert b.size == n and b.refs == 1, (i, b.size, b.refs)
                a = np.frombuffer(b, dtype=np.uint8)
                bad = np.flatnonzero(a != pattern(i, n))
                assert bad.size == 0, f"message {i}: {bad.size} wrong bytes, first at {bad[0]}"
                del a
                b.close()
                checked += n
            # The name was set before the first message went out.
            off = heap.name_get("pyprod.table")
            table = heap.buffer_at(off)
            assert table.size == TABLE_SIZE and table.refs == 2
            assert np.array_equal(np.frombuffer(table, dtype=np.uint8), pattern(count, TABLE_SIZE))
            ack = heap.channel("pyprod.ack", 4)
            r = heap.buf_alloc(16)
            memoryview(r)[:] = struct.pack("<QQ", count, checked)
            ack.send(r)
            assert r.closed
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 0
            assert out == f"producer: {count} messages, {checked} bytes\n"
            # The producer released its reference and removed the name.
            assert table.refs == 1
            with pytest.raises(KeyError):
                heap.name_get("pyprod.table")
            table.close()
            with pytest.raises(BlockingIOError):
                data.recv(timeout=0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    data.close()
    ack.close()
    heap.channel_unlink("pyprod.data")
    heap.channel_unlink("pyprod.ack")


CHILD = textwrap.dedent("""
    import sys, numpy as np, goshm
    h = goshm.attach(sys.argv[1])
    ch = h.channel("pykill.data", 8)
    held = []
    for i in range(10):
        b = h.buf_alloc(64 * 1024)
        np.frombuffer(b, dtype=np.uint8)[:] = (i * 131 + 1 + 7 * np.arange(64 * 1024)) & 0xFF
        if i % 2:
            held.append(b)
        else:
            ch.send(b)
    print("ready", flush=True)
    import time
    time.sleep(60)                          # until SIGKILL
""")


def test_killed_python_producer(daemon, heap):
    ch = heap.channel("pykill.data", 8)
    env = dict(os.environ)
    with subprocess.Popen([sys.executable, "-c", CHILD, daemon.sock], stdout=subprocess.PIPE, text=True,
                          env=env) as child:
        try:
            assert child.stdout.readline() == "ready\n"
            daemon.wait_large(10)
            child.kill()                    # SIGKILL, holding five buffers
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    # The five it held are freed by goshmd; the five it sent are ours.
    daemon.wait_large(5)
    for i in range(0, 10, 2):
        with ch.recv(timeout=5) as b:
            assert b.size == 64 * 1024 and b.refs == 1
            assert np.array_equal(np.frombuffer(b, dtype=np.uint8), pattern(i, 64 * 1024))
    daemon.wait_large(0)
    ch.close()
    heap.channel_unlink("pykill.data")
