"""Benchmarks of the service as deployed: ``python -m bench`` (see BENCHMARKS.md)."""
