"""Exports: the harness's sandbox, rendered for schedulers other than one Docker engine.

On one machine the harness enforces its envelope itself (engine flags, an NVML sampler, a wall-clock
watcher, an egress bridge). Organizers whose GPUs sit in a cluster need the same envelope stated to
that cluster instead. Each module here renders it from the same sandbox profile, so no limit is
written twice, and says which parts the target must enforce itself.

- `kubernetes`: one Job per submission stage that runs submission code (fetch, check, encode).

Importing this package has no side effects; the renderers only read files and write where told.
"""
