import os
open("/tmp/HOSTILE-ESCAPE-local-path", "w").write("setup.py ran")
from setuptools import setup
setup(name="hostile-pkg", version="1.0")
