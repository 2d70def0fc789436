"""The tasks: the challenge's task registry as data, task arguments, and the generated demo tasks.

`registry` loads and validates `registry.json`; `arguments` turns a command-line task (a registry
name or a task module file) into a source; `models` is the offline store of X-ARES's pretrained
dependencies (`aecc models fetch`); `sets` plans a whole task set (which tasks run, which cannot and
why); `demo` generates small X-ARES-format tasks for the demo and the tests, apart from the production
stages.
"""
