"""Only for the package list: pyproject.toml holds everything else."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["vsr", "vsr.*"]), "vsr._presets"])
