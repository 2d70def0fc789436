"""AECC harness: sandboxed validation and scoring of ICME 2025 Audio Encoder Challenge submissions.

Importing this package has no side effects: no engine connection, no NVML initialisation,
no logging configuration. The CLI (`harness.cli`) does those explicitly.
"""

__version__ = "0.1.0"
