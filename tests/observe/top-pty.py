#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""top-pty.py: goshmctl top on a pseudo-terminal, as a person runs it.

Usage: top-pty.py GOSHMCTL SOCKET KEY   (KEY: q or ctrl-c)

Runs `goshmctl top` then `stty -a` in one shell (which ignores SIGINT
itself, so that Ctrl-C reaches only top; top installs its own handler) on a new pty, waits for the
first frame (it must clear the screen: an escape sequence), sends the key,
and checks that top exits by itself within 5 s and that the terminal is
back in canonical mode with echo (stty prints "icanon" and "echo", not
"-icanon"/"-echo"). Exit 0 on success, 1 with a message otherwise.
"""
import os, pty, select, sys, time

goshmctl, sock, key = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", f"trap '' INT; '{goshmctl}' --socket '{sock}' top; echo TOP-EXIT=$?; stty -a; echo DONE"])

out = b""
def read_until(pred, timeout):
    global out
    end = time.time() + timeout
    while time.time() < end and not pred(out):
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return pred(out)

if not read_until(lambda o: b"goshm top" in o and b"\x1b[H" in o, 10):
    print("no first frame on the terminal:", out[-2000:]); sys.exit(1)
t0 = time.time()
os.write(fd, b"q" if key == "q" else b"\x03")
if not read_until(lambda o: b"DONE" in o, 5):
    print("top did not quit on", key, out[-2000:]); sys.exit(1)
text = out.decode("utf-8", "replace")
if "TOP-EXIT=0" not in text and not (key == "ctrl-c" and "TOP-EXIT=" in text):
    print("top's exit status:", text[-1500:]); sys.exit(1)
stty = text[text.index("TOP-EXIT="):]
words = stty.replace("\r", " ").replace("\n", " ").split()
if "-icanon" in words or "-echo" in words or "icanon" not in words or "echo" not in words:
    print("terminal not restored:", stty); sys.exit(1)
os.waitpid(pid, 0)
print(f"top quit on {key} in {time.time() - t0:.2f} s, terminal restored")
