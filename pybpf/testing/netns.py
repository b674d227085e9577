"""Two private network namespaces joined by a veth pair: a small test network for XDP, tc and socket programs.

    with VethPair("t1") as net:              # namespaces t1a (192.0.2.1) and t1b (192.0.2.2)
        with net.inside_b():
            link = attach_xdp(prog, net.b)   # the veth in namespace b is named like it
        assert not net.ping()                # ICMP from a to b
        assert net.tcp_connects()

Everything is made with ``ip`` (iproute2) and removed on exit.  ``ip netns exec`` remounts /sys, hiding bpffs
pins, so code that attaches enters a namespace from Python instead (:meth:`inside_a`/:meth:`inside_b`).
"""
from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
import time

from ..sys.netns import entered
from . import packets


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


class VethPair:
    """Namespaces ``<prefix>a`` and ``<prefix>b`` joined by veth interfaces named like their namespace, with
    addresses ``addr_a``/``addr_b`` (/24) and loopback up.  Use unique prefixes on a shared machine."""

    def __init__(self, prefix: str, addr_a: str = "192.0.2.1", addr_b: str = "192.0.2.2"):
        self.a, self.b = prefix + "a", prefix + "b"
        self.addr_a, self.addr_b = addr_a, addr_b

    def __enter__(self) -> VethPair:
        try:
            _ip("netns", "add", self.a)
            _ip("netns", "add", self.b)
            _ip("link", "add", self.a, "netns", self.a, "type", "veth", "peer", "name", self.b, "netns", self.b)
            for ns, addr in ((self.a, self.addr_a), (self.b, self.addr_b)):
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ns)
                _ip("-n", ns, "link", "set", ns, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete both namespaces (and with them the veth pair)."""
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def inside_a(self) -> contextlib.AbstractContextManager[None]:
        """Run a block inside namespace a (this thread only)."""
        return entered(self.a)

    def inside_b(self) -> contextlib.AbstractContextManager[None]:
        """Run a block inside namespace b (this thread only)."""
        return entered(self.b)

    def ping(self, count: int = 1, timeout: float = 2.0) -> bool:
        """Send up to ``count`` ICMP echo requests from a to b, one at a time; True as soon as one is answered
        (each waits up to ``timeout`` seconds).

        Done from Python with a raw socket (no ``ping`` binary needed); the echo id is this process's."""
        ident = os.getpid() & 0xFFFF
        with self.inside_a():
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        with sock:
            for seq in range(1, count + 1):
                sock.sendto(packets.icmp_echo(b"pybpf", ident, seq), (self.addr_b, 0))
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    if not select.select([sock], [], [], left)[0]:
                        break
                    data, (src, _) = sock.recvfrom(2048)
                    ihl = (data[0] & 0x0F) * 4
                    kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                    if src == self.addr_b and kind == 0 and (rid, rseq) == (ident, seq):
                        return True
        return False

    def tcp_connects(self, port: int = 8080, timeout: float = 10.0) -> bool:
        """A TCP connection from a to b carries a few bytes (sockets made inside each namespace)."""
        with self.inside_b():
            server = socket.create_server((self.addr_b, port))
        with server:
            with self.inside_a():
                client = socket.socket()
            with client:
                client.settimeout(timeout)
                try:
                    client.connect((self.addr_b, port))
                except OSError:
                    return False
                conn, _ = server.accept()
                with conn:
                    client.sendall(b"ping")
                    return conn.recv(4) == b"ping"

    def udp_send(self, port: int, payload: bytes = b"pybpf") -> None:
        """Send one UDP datagram from a to b's ``port``."""
        with self.inside_a():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.sendto(payload, (self.addr_b, port))
