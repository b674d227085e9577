"""Loads the pybpf plugin explicitly only when its pytest11 entry point is not installed (older pybpf)."""
import importlib.metadata

if not any(ep.value == "pybpf.testing.plugin" for ep in importlib.metadata.entry_points(group="pytest11")):
    pytest_plugins = ["pybpf.testing.plugin"]
