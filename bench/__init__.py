"""`make bench` and its tools (bench/run.py is the entry point; bench/README.md says what it measures).

A package only so that the entry point's parts import one another as `bench.*` wherever it is
started from (`python bench/run.py`, or a test loading a file); nothing here is installed.
"""
