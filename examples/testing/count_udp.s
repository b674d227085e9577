# An XDP program written with `pybpf asm`: count UDP/IPv4 packets in `udp_count` (an array of one u64), drop
# those to port 9 (discard) and pass everything else.
        .section xdp
        .map udp_count, type=array, key_size=4, value_size=8, max_entries=1
        .license "GPL"
count_udp:
        r6 = r1
        r2 = *(u32 *)(r6 + 0)                # ctx->data
        r3 = *(u32 *)(r6 + 4)                # ctx->data_end
        r4 = r2
        r4 += 38                             # Ethernet 14 + IPv4 20 + UDP ports 4
        if r4 > r3 goto pass
        r5 = *(u16 *)(r2 + 12)               # EtherType (network order)
        if r5 != 0x0008 goto pass            # ETH_P_IP
        r5 = *(u8 *)(r2 + 23)                # IP protocol
        if r5 != 17 goto pass
        r7 = *(u16 *)(r2 + 36)               # UDP destination port (network order)
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = map[udp_count] ll
        call bpf_map_lookup_elem
        if r0 == 0 goto pass
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        if r7 == 0x0900 goto drop            # port 9
pass:
        r0 = 2                               # XDP_PASS
        exit
drop:
        r0 = 1                               # XDP_DROP
        exit
