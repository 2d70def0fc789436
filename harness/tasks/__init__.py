"""The tasks: the challenge's task registry as data, task arguments, the model store and task sets.

`registry` loads and validates `registry.json`; `arguments` turns a command-line task (a registry
name or a task module file) into a source; `models` is the offline store of X-ARES's pretrained
dependencies (`aecc models fetch`); `sets` plans a whole task set (which tasks run, which cannot and
why). The small X-ARES-format tasks the demo and the tests generate are made by `harness.demodata`.
"""
