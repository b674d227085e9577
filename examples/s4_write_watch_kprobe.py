#!/usr/bin/env python3
"""Scenario S4: the S3 write watch on the kernel's write path -- a kprobe on vfs_write, same PID knob.

    sudo python3 examples/s4_write_watch_kprobe.py PID      # until Ctrl-C
    sudo python3 examples/s4_write_watch_kprobe.py --demo   # watch a child write, then stop

write_watch_kprobe.bpf.o has SEC("kprobe/vfs_write") and prints the seed's "pid= %d,name:%s. writing data"
line.  Attaching needs a kernel with kprobes (CONFIG_KPROBES); without them attach() says so.
"""
from __future__ import annotations

from s3_write_watch import watch

if __name__ == "__main__":
    raise SystemExit(watch("write_watch_kprobe", "writing data"))
