"""Benchmarks, run by `make bench`, never by `make test`.

No file here is named `test_*.py`, so pytest never collects one. Each benchmark is a module
run as `python -m benchmarks.<name>`; `common` holds what they share (statistics, the
machine's description, Markdown output, the sections of BENCHMARKS.md).
"""
