"""Package list for setuptools: every pybpf package, plus prebuilt/ (sources and committed .o files) shipped
inside the wheel as ``pybpf.prebuilt``.  Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["pybpf", "pybpf.*"]) + ["pybpf.prebuilt"],
    package_dir={"pybpf.prebuilt": "prebuilt"},
)
