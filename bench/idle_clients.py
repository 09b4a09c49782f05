#!/usr/bin/env python3
"""Hold N idle PostgreSQL clients open against a proxy, for the idle-memory benchmark.

Each client sends a protocol 3.0 StartupMessage, expects trust authentication and waits
for ReadyForQuery; then it stays idle. Logins run in batches over non-blocking sockets
(one selector), so 10,000 clients log in within seconds.

Prints "READY <n> <seconds>" once every client is idle, then holds them until stdin
closes, SIGTERM/SIGINT arrives, or --hold seconds pass (always bounded), prints
"LOST <n>" (clients the proxy closed meanwhile) and sends Terminate on each. Exit status
1 if any login failed or any client was lost (the reason goes to stderr).
Loopback targets only.
"""
import argparse
import ipaddress
import selectors
import signal
import socket
import struct
import sys
import time


def startup(user, database):
    body = struct.pack("!i", 196608)
    for key, value in (("user", user), ("database", database), ("application_name", "idle")):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


class Login:
    """One client's login: bytes in until ReadyForQuery, or an error."""

    def __init__(self, sock):
        self.sock = sock
        self.pending = b""
        self.done = False

    def feed(self, chunk):
        self.pending += chunk
        while len(self.pending) >= 5:
            tag = self.pending[0:1]
            length = struct.unpack("!i", self.pending[1:5])[0]
            if len(self.pending) < 1 + length:
                return
            body = self.pending[5:1 + length]
            self.pending = self.pending[1 + length:]
            if tag == b"E":
                raise RuntimeError("login refused: %r" % body)
            if tag == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise RuntimeError("only trust authentication is supported")
            if tag == b"Z":
                self.done = True


def log_in(host, port, packet, count, batch, deadline):
    clients = []
    selector = selectors.DefaultSelector()
    while len(clients) < count:
        wave = []
        for _ in range(min(batch, count - len(clients))):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(packet)
            sock.setblocking(False)
            login = Login(sock)
            selector.register(sock, selectors.EVENT_READ, login)
            wave.append(login)
        waiting = len(wave)
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError("logins did not finish in time")
            for key, _ in selector.select(timeout=1.0):
                login = key.data
                chunk = login.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed during login")
                login.feed(chunk)
                if login.done:
                    selector.unregister(login.sock)
                    waiting -= 1
        clients.extend(login.sock for login in wave)
    return clients


def count_lost(clients):
    """Clients whose connection the proxy closed while they sat idle."""
    lost = 0
    for sock in clients:
        try:
            if sock.recv(65536) == b"":
                lost += 1
        except BlockingIOError:
            pass  # still open, nothing to read: the expected case
        except OSError:
            lost += 1
    return lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--db", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--hold", type=float, default=300.0)
    parser.add_argument("--login-timeout", type=float, default=120.0)
    args = parser.parse_args()
    if not ipaddress.ip_address(socket.gethostbyname(args.host)).is_loopback:
        sys.exit("idle_clients: refusing a non-loopback host")

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))

    started = time.monotonic()
    clients = []
    status = 0
    try:
        clients = log_in(args.host, args.port, startup(args.user, args.db), args.count,
                         args.batch, started + args.login_timeout)
        print("READY %d %.3f" % (len(clients), time.monotonic() - started), flush=True)
        # Hold until stdin closes (the benchmark says it is done), a signal, or --hold.
        watch = selectors.DefaultSelector()
        watch.register(sys.stdin, selectors.EVENT_READ)
        end = time.monotonic() + args.hold
        while not stopping and time.monotonic() < end:
            if watch.select(timeout=0.2) and not sys.stdin.buffer.read1(4096):
                break
        lost = count_lost(clients)
        print("LOST %d" % lost, flush=True)
        status = 1 if lost else 0
    except (OSError, RuntimeError, TimeoutError) as error:
        print("idle_clients: %s after %d clients" % (error, len(clients)), file=sys.stderr)
        status = 1
    finally:
        terminate = b"X" + struct.pack("!i", 4)
        for sock in clients:
            try:
                sock.setblocking(True)
                sock.sendall(terminate)
                sock.close()
            except OSError:
                pass
    sys.exit(status)


if __name__ == "__main__":
    main()
