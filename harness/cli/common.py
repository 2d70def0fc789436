"""What every command shares: the console, JSON output, build options from flags, the default profile."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def console() -> Any:
    import shutil

    from rich.console import Console

    # Off a terminal rich would wrap tables at 80 columns; logs and CI are wider than that.
    return Console(stderr=True, width=None if sys.stderr.isatty() else max(shutil.get_terminal_size().columns, 160))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def progress_printer(out: Any) -> Any:
    """A progress callback printing dim lines; names from submissions are never read as markup."""
    from rich.text import Text

    return lambda message: out.print(Text(str(message), style="dim"), highlight=False)


def add_build_flags(parser: argparse.ArgumentParser, *, index: bool = True, resolve: bool = False) -> None:
    parser.add_argument("--ca-bundle", help="PEM bundle builds trust for TLS (default: AECC_CA_BUNDLE, PIP_CERT "
                                            "or the system's)")
    if index:
        parser.add_argument("--pip-index-url", help="pip index for builds (default PyPI)")
    parser.add_argument("--torch-flavour", choices=("cuda", "cpu"),
                        help="torch build under the submission: cuda (default, what a T4 runs) or cpu (the +cpu "
                             "build: a few hundred MB, for CI runners); $AECC_TORCH_FLAVOUR")
    parser.add_argument("--torch-index-url", help="index of +cpu torch builds (default PyTorch's; "
                                                  "$AECC_TORCH_CPU_INDEX_URL)")
    if resolve:
        parser.add_argument("--resolve-before", metavar="INSTANT",
                            help="resolve submission requirements as of this instant (ISO 8601, e.g. the "
                                 "deadline 2025-04-30T23:59:59Z); needs an index that serves upload times")


def build_options(args: argparse.Namespace) -> Any:
    from harness.layers.options import BuildOptions

    return BuildOptions.from_environment(
        ca_bundle=Path(args.ca_bundle) if getattr(args, "ca_bundle", None) else None,
        pip_index_url=getattr(args, "pip_index_url", None),
        pip_extra_index_urls=tuple(args.pip_extra_index_url) if getattr(args, "pip_extra_index_url", None) else None,
        pip_trusted_hosts=tuple(args.pip_trusted_host) if getattr(args, "pip_trusted_host", None) else None,
        base_source=getattr(args, "base_source", None),
        debian_mirror=getattr(args, "debian_mirror", None),
        force=getattr(args, "force", False) or None,
        resolve_before=getattr(args, "resolve_before", None),
        torch_flavour=getattr(args, "torch_flavour", None),
        torch_cpu_index_url=getattr(args, "torch_index_url", None),
    )


def default_profile() -> str:
    from harness import doctor

    return doctor.default_profile_for_host()
