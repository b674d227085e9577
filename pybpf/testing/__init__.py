"""Helpers for testing BPF programs from Python: packet builders (:mod:`pybpf.testing.packets`) and the
pytest plugin (:mod:`pybpf.testing.plugin`)."""
