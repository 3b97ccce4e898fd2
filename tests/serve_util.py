"""What the serve tests share: checks that collect failures, a free port, a server's start and stop, and running
one call per item concurrently."""
import socket
import subprocess
import sys
import threading
import time

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def finish(name):
    if failures:
        print(f"{name}: {len(failures)} check(s) failed")
        sys.exit(1)
    print(f"{name}: all checks passed")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(cmd, port):
    """cmd runs until the port accepts (or the process ends); returns the process"""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    return proc


def concurrently(fn, items):
    """fn(item) for every item, each in its own thread; the results in order"""
    out = [None] * len(items)
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(items[i]))) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
