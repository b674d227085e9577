"""The one door to the kernel: every bpf(), perf_event_open(), ioctl, mount, tracefs and netlink call that
pybpf makes goes through this package.  ``abi`` holds the kernel's constants in kernel names."""
