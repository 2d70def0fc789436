"""The harness's in-container agent.

This package runs *inside* containers (runtime and submission images), never on the host. It
imports only the standard library at module level; torch and friends are imported by the
functions that need them, so `python -m checker.probe` also works in an image without torch.
"""
