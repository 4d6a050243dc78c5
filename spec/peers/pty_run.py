"""Runs a shell command on a new terminal (a pty), types "hello" and a newline, waits
until "hello" has come back twice (the terminal's echo, then the command's output),
types Ctrl-D, and waits for the command to exit. Prints what the terminal showed, then
"status N". Every wait is bounded.
    python3 pty_run.py 'COMMAND'"""
import os
import pty
import select
import sys
import time

pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", sys.argv[1]])

out = b""


def read_until(done, seconds):
    global out
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:   # EIO: the command exited, the terminal is gone
                return
            if not data:
                return
            out += data


os.write(fd, b"hello\n")
read_until(lambda: out.count(b"hello") >= 2, 10)
os.write(fd, b"\x04")
read_until(lambda: False, 10)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.stdout.write("\nstatus %d\n" % os.waitstatus_to_exitcode(status))
