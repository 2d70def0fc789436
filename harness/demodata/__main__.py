"""Lets `python -m harness.demodata ENV` run the generator's command line (`harness.demodata.cli`)."""

import sys

from harness.demodata.cli import main

sys.exit(main())
