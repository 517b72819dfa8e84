# SPDX-License-Identifier: MIT
# conftest.py: the harness of the Python binding's tests (tests/python): a
# real goshmd per test on a socket in a fresh private directory, its stats
# through `goshmctl stats --json`, and at the end of every test the check
# that the heap is empty again (nothing leaked by the binding: every Buffer
# released, every channel gone) and that the daemon exits cleanly.
#
# Environment (set by ctest, tests/python/CMakeLists.txt): GOSHMD and
# GOSHMCTL, the binaries; GOSHM_PY_PRODUCER, the C producer; PYTHONPATH, the
# directory of the goshm module under test; GOSHMD_ARGS, more goshmd options.
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import goshm


def _die_with_parent():
    # In the daemon, before exec: SIGKILL when the test process dies (a
    # crash, ctest's timeout), so no goshmd outlives its test.
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"${name} is not set: run these tests through ctest (tests/python/CMakeLists.txt)")
    return value


class Daemon:
    """A goshmd on a private socket; stats() and the wait helpers."""

    def __init__(self):
        self.goshmd = _env("GOSHMD")
        self.goshmctl = _env("GOSHMCTL")
        self.dir = tempfile.mkdtemp(prefix="goshm-py.", dir="/tmp")
        os.chmod(self.dir, 0o700)
        self.sock = os.path.join(self.dir, "goshmd.sock")
        args = [self.goshmd, "--socket", self.sock, "--size", "256M", "--log-level", "warn"]
        args += os.environ.get("GOSHMD_ARGS", "").split()
        self.proc = subprocess.Popen(args, preexec_fn=_die_with_parent)
        subprocess.run([self.goshmctl, "--socket", self.sock, "--timeout", "15", "wait"], check=True,
                       stdout=subprocess.DEVNULL, timeout=30)

    def stats(self):
        """The heap totals of `goshmctl stats --json` (in_use_bytes, large_objects, ...)."""
        out = subprocess.run([self.goshmctl, "--socket", self.sock, "stats", "--json"], check=True,
                             capture_output=True, text=True, timeout=30).stdout
        return json.loads(out)["heap"]

    def wait_for(self, pred, what, timeout=10.0):
        """Poll the stats until pred(stats) holds; fail with what and the last stats."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not reached in {timeout} s; heap stats {st}")
            time.sleep(0.02)

    def wait_large(self, n, timeout=10.0):
        """Wait until the heap holds exactly n large objects (> 32 KiB)."""
        return self.wait_for(lambda st: st["large_objects"] == n, f"{n} large objects", timeout)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


@pytest.fixture
def daemon():
    d = Daemon()
    try:
        yield d
        # Everything the test made is closed or collected by now: the heap
        # must be empty again (frees from other processes drain within a
        # few housekeeping ticks).
        d.wait_for(lambda st: st["in_use_bytes"] == 0 and st["large_objects"] == 0,
                   "the heap empty at the end of the test")
    finally:
        rc = d.stop()
        assert rc == 0, f"goshmd exited with {rc}"


@pytest.fixture
def heap(daemon):
    with goshm.attach(daemon.sock) as h:
        yield h


@pytest.fixture
def producer():
    return _env("GOSHM_PY_PRODUCER")
