"""Packet builders produce well-formed headers: lengths, and checksums that verify."""
from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from pybpf.testing import packets


def test_ipv4_header_checksum_known_vector() -> None:
    # the classic example header (192.168.0.1 -> 192.168.0.199, UDP, total length 0x73): checksum 0xb861
    hdr = packets.ipv4(b"\0" * (0x73 - 20), "192.168.0.1", "192.168.0.199", 17, ttl=64, dont_fragment=True)
    assert hdr[:20].hex() == "45000073000040004011b861c0a80001c0a800c7"
    assert packets.checksum(hdr[:20]) == 0


@given(st.binary(max_size=64), st.integers(1, 65535), st.integers(1, 65535))
def test_l4_checksums_verify(payload: bytes, sport: int, dport: int) -> None:
    for src, dst in (("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")):
        for build, proto in ((packets.udp, 17), (packets.tcp, 6)):
            seg = build(payload, sport, dport, src, dst)
            assert packets.checksum(packets._pseudo(src, dst, proto, len(seg)) + seg) == 0
        assert struct.unpack("!H", packets.udp(payload, sport, dport, src, dst)[4:6])[0] == 8 + len(payload)


def test_frames() -> None:
    f = packets.tcp_frame("192.0.2.1", "192.0.2.2", 1000, 80, "SA")
    assert len(f) == 14 + 20 + 20 and f[12:14] == b"\x08\x00" and f[14 + 9] == 6 and f[14 + 20 + 13] == 0x12
    f6 = packets.icmp_frame("2001:db8::1", "2001:db8::2", b"x")
    assert f6[12:14] == b"\x86\xdd" and f6[14 + 6] == 58 and f6[14 + 40] == 128
    f4 = packets.icmp_frame("192.0.2.1", "192.0.2.2")
    assert f4[14 + 9] == 1 and packets.checksum(f4[34:]) == 0
