"""Load benchmarks for the gateway; run them with `python -m tests.benchmarks.run`.

Nothing here is a pytest test: `conftest.py` keeps this directory out of collection.
"""
