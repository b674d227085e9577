"""Small packet builders for testing XDP, tc and socket-filter programs (no dependency beyond the stdlib).

Each layer is a function returning bytes with correct lengths and checksums; the ``*_frame`` helpers build a
whole Ethernet frame in one call:

    frame = packets.udp4_frame("192.0.2.1", "192.0.2.2", 1234, 53, b"query")
    result = prog.test_run(frame)
"""
from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

_TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac(addr: str | bytes) -> bytes:
    """``"02:00:00:00:00:01"`` -> 6 bytes."""
    if isinstance(addr, bytes):
        if len(addr) != 6:
            raise ValueError(f"a MAC address is 6 bytes, got {len(addr)}")
        return addr
    return bytes(int(x, 16) for x in addr.split(":"))


def ether(payload: bytes, ethertype: int = ETH_P_IP, dst: str | bytes = "02:00:00:00:00:02",
          src: str | bytes = "02:00:00:00:00:01") -> bytes:
    """An Ethernet II frame around ``payload``."""
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def ipv4(payload: bytes, src: str, dst: str, proto: int, ttl: int = 64, ident: int = 0, tos: int = 0,
         dont_fragment: bool = True) -> bytes:
    """An IPv4 header (no options, header checksum set) followed by ``payload``."""
    flags = 0x4000 if dont_fragment else 0
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, flags, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + payload


def ipv6(payload: bytes, src: str, dst: str, next_header: int, hop_limit: int = 64, flow_label: int = 0) -> bytes:
    """An IPv6 header followed by ``payload``."""
    return struct.pack("!IHBB16s16s", (6 << 28) | flow_label, len(payload), next_header, hop_limit,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 4:
        return a.packed + b.packed + struct.pack("!BBH", 0, proto, length)
    return a.packed + b.packed + struct.pack("!IxxxB", length, proto)


def udp(payload: bytes, sport: int, dport: int, src: str, dst: str) -> bytes:
    """A UDP header (checksum over the IPv4/IPv6 pseudo header) followed by ``payload``."""
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(_pseudo(src, dst, IPPROTO_UDP, length) + hdr + payload) or 0xFFFF
    return hdr[:6] + struct.pack("!H", csum) + payload


def tcp(payload: bytes, sport: int, dport: int, src: str, dst: str, flags: str = "S", seq: int = 1, ack: int = 0,
        window: int = 65535) -> bytes:
    """A TCP header without options (``flags`` as letters, e.g. ``"SA"``) followed by ``payload``."""
    bits = 0
    for ch in flags.upper():
        if ch not in _TCP_FLAGS:
            raise ValueError(f"unknown TCP flag {ch!r}; use letters of FSRPAUEC")
        bits |= _TCP_FLAGS[ch]
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, bits, window, 0, 0)
    csum = checksum(_pseudo(src, dst, IPPROTO_TCP, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:] + payload


def icmp_echo(payload: bytes = b"", ident: int = 1, seq: int = 1, reply: bool = False) -> bytes:
    """An ICMP echo request (or reply) with its checksum."""
    hdr = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq)
    return hdr[:2] + struct.pack("!H", checksum(hdr + payload)) + hdr[4:] + payload


def icmpv6_echo(src: str, dst: str, payload: bytes = b"", ident: int = 1, seq: int = 1, reply: bool = False) -> bytes:
    """An ICMPv6 echo request (or reply) with its checksum over the IPv6 pseudo header."""
    hdr = struct.pack("!BBHHH", 129 if reply else 128, 0, 0, ident, seq)
    csum = checksum(_pseudo(src, dst, IPPROTO_ICMPV6, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:2] + struct.pack("!H", csum) + hdr[4:] + payload


def _l3(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    if ipaddress.ip_address(src).version == 4:
        return ether(ipv4(l4, src, dst, proto), ETH_P_IP)
    return ether(ipv6(l4, src, dst, proto), ETH_P_IPV6)


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A whole Ethernet/IP/UDP frame (IPv4 or IPv6, by the addresses)."""
    return _l3(src, dst, IPPROTO_UDP, udp(payload, sport, dport, src, dst))


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: str = "S", payload: bytes = b"",
              seq: int = 1, ack: int = 0) -> bytes:
    """A whole Ethernet/IP/TCP frame (IPv4 or IPv6, by the addresses)."""
    return _l3(src, dst, IPPROTO_TCP, tcp(payload, sport, dport, src, dst, flags, seq, ack))


def icmp_frame(src: str, dst: str, payload: bytes = b"", ident: int = 1, seq: int = 1) -> bytes:
    """A whole Ethernet/IP echo-request frame: ICMP over IPv4, ICMPv6 over IPv6."""
    if ipaddress.ip_address(src).version == 4:
        return ether(ipv4(icmp_echo(payload, ident, seq), src, dst, IPPROTO_ICMP), ETH_P_IP)
    return ether(ipv6(icmpv6_echo(src, dst, payload, ident, seq), src, dst, IPPROTO_ICMPV6), ETH_P_IPV6)
