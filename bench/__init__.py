"""Benchmarks: figures printed as tables, never asserted. Run with `make bench`."""
