"""Benchmarks and measurement scripts (not tests): run with `python -m bench.NAME`."""
