"""Ready-made tools on pybpf's prebuilt CO-RE objects, with BCC-like output and options.

Each runs as ``python -m pybpf.tools.NAME`` or as the console script ``pybpf-NAME``:

* ``execsnoop``  -- new processes (exec), with arguments and results;
* ``opensnoop``  -- open()/openat() calls, with paths and results;
* ``tcptracer``  -- TCP connect, accept and close events;
* ``biolatency`` -- block I/O latency as a log2 histogram;
* ``xdp_drop``   -- drop one IP protocol on an interface at XDP (``pybpf-xdp-drop``).

They share :mod:`pybpf.tools.runner` (load, attach, poll, detach).
"""
