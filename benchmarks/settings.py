"""The production settings with the benchmark's URLconf: the same middleware, database, cache
and throttles, plus the ceiling endpoint (`benchmarks/minimal.py`) mounted beside the API."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
