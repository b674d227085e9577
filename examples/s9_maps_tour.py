#!/usr/bin/env python3
"""Scenario S9: a tour of the map types -- each created by the loader, filled and read from Python.

    sudo python3 examples/s9_maps_tour.py

maps_tour.bpf.o's program runs on getpid() of the process in ``target_pid`` (.rodata) and touches every map
once per call: hash, array, per-CPU hash and array, LRU and per-CPU LRU hash, LPM trie, array of maps
(filled statically), hash of maps (filled here), queue, stack, bloom filter, stack trace map, ring buffer,
and a prog array it tail-calls through twice.  This script fills what user space must, calls getpid() three
times, and prints what each map holds.
"""
from __future__ import annotations

import os
from typing import Any

from pybpf.prebuilt import path as prebuilt

import pybpf

CALLS = 3


def main() -> int:
    pid = os.getpid()
    with pybpf.load(prebuilt("maps_tour"), globals={"target_pid": pid}) as obj:
        m = obj.maps
        # what user space provides before the program runs
        m["lpm"][(8, b"\x7f\x00\x00\x00")] = 8  # 127.0.0.0/8 -> 8; the program looks up 127.0.0.1
        inner = pybpf.Map.create("hash", 4, 8, 8, key="I", value="Q")
        m["hash_of_maps"][pid] = inner  # an inner map for this pid
        for name in ("queue", "stack", "bloom"):
            m[name].set_codecs(value="I")  # the kernel takes no BTF for these: say their values are u32
        m["queue"].push(41)
        m["stack"].push(100)
        m["bloom"].push(pid)
        records: list[Any] = []
        ring = pybpf.RingBuffer(m["ringbuf"], records.append, decode=obj.spec.btf.find_one("tour_record"))
        with inner, ring, obj.programs["tour"].attach():
            for _ in range(CALLS):
                os.getpid()  # each call is a getpid() syscall (glibc does not cache it)
            ring.consume()

        array = m["array"]
        print(f"hash[pid]            = {m['hash'][pid]}")
        print(f"array[0]             = {array[0]}")
        print(f"percpu_hash[pid]     = {sum(m['percpu_hash'][pid])} (summed over CPUs)")
        print(f"percpu_array[0]      = {sum(m['percpu_array'][0])} (summed over CPUs)")
        print(f"lru_hash[pid]        = {m['lru_hash'][pid]}")
        print(f"lru_percpu_hash[pid] = {sum(m['lru_percpu_hash'][pid])} (summed over CPUs)")
        print(f"lpm match for 127.0.0.1 -> array[1] = {array[1]}")
        print(f"outer_array[0] (inner0)[0] = {m['inner0'][0]}")
        print(f"hash_of_maps[pid][0] = {inner_value(m['hash_of_maps'], pid)}")
        print(f"queue: {m['queue'].pop()}  stack: {m['stack'].pop()}  (pushed 41 and 100; +1 per call)")
        print(f"bloom filter had pid -> array[2] = {array[2]}")
        stack_id = array[3]
        print(f"stack_traces[{stack_id}]: {len([a for a in m['stack_traces'][stack_id] if a])} user frames")
        print(f"tail calls: tail_step1 ran {array[4]} times, tail_step2 {array[5]} times")
        print(f"ring buffer: {records}")
    return 0


def inner_value(outer: pybpf.Map, key: int) -> Any:
    """Value [0] of the inner map stored at ``outer[key]`` (opened by its id)."""
    with outer.inner_map(key) as inner:
        inner.set_codecs(key="I", value="Q")
        return inner[0]


if __name__ == "__main__":
    raise SystemExit(main())
