"""`aecc images build|bootstrap|list|prune|lock`: the harness's image layers."""

from __future__ import annotations

import argparse

from harness.cli.common import build_options, console, print_json


def register(sub: argparse._SubParsersAction) -> None:
    images_p = sub.add_parser("images", help="build, list and prune the harness's images")
    isub = images_p.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    b = isub.add_parser("build", help="build the image layers up to a target; unchanged layers are cache hits")
    b.add_argument("--target", default="runtime", help="base, torch, torch-<version>, runtime-deps, runtime")
    b.add_argument("--base-source", choices=("auto", "pull", "bootstrap"),
                   help="where the Debian root comes from (default auto: local, then pull, then debootstrap)")
    b.add_argument("--ca-bundle", help="PEM bundle builds trust for TLS (default: AECC_CA_BUNDLE, PIP_CERT or the system's)")
    b.add_argument("--pip-index-url", help="pip index for builds (default PyPI)")
    b.add_argument("--pip-extra-index-url", action="append", help="extra pip index (repeatable)")
    b.add_argument("--pip-trusted-host", action="append", help="pip trusted host (repeatable)")
    b.add_argument("--debian-mirror", help="Debian mirror for debootstrap")
    b.add_argument("--torch-index-url", help="index of +cpu torch builds, for a torch-<version>-cpu target")
    b.add_argument("--force", action="store_true", help="rebuild every layer of the chain even if cached")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run_build)
    bs = isub.add_parser("bootstrap", help="debootstrap a Debian root and import it (no registry needed)")
    bs.add_argument("--debian-mirror")
    bs.set_defaults(func=run_bootstrap)
    ls = isub.add_parser("list", help="list the harness's images, marking the current ones")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)
    pr = isub.add_parser("prune", help="remove images that are not the current build of a layer")
    pr.add_argument("--all", action="store_true", help="remove every harness image, current ones too")
    pr.add_argument("--keep", action="append", help="reference to keep (repeatable)")
    pr.set_defaults(func=run_prune)
    lk = isub.add_parser("lock", help="copy the locks of the built runtime chain into images/locks/ (maintainers)")
    lk.add_argument("--target", default="runtime", help="the layer whose chain to lock (default runtime)")
    lk.set_defaults(func=run_lock)


def run_build(args: argparse.Namespace) -> int:
    from harness.layers.build import build_chain
    from harness.layers.model import named_layer
    from harness.sandbox import engine

    out = console()
    options = build_options(args)
    results = build_chain(engine.connect(), named_layer(args.target, options.torch_cpu_index_url), options,
                          log=lambda m: out.print(f"[dim]{m}[/]"))
    if args.json:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            state = "cached" if r.cached else f"built in {r.seconds:.0f} s"
            lock = f"  lock {r.lock_digest[:12]} ({r.lock_source.value})" if r.lock_digest else ""
            out.print(f"{r.layer:<16} {r.image:<48} {state}{lock}")
    return 0


def run_bootstrap(args: argparse.Namespace) -> int:
    from harness.layers.rootfs import (
        DEFAULT_MIRROR,
        ROOTFS_REPO,
        SUITE,
        bootstrap_rootfs,
    )
    from harness.sandbox import engine

    out = console()
    image = bootstrap_rootfs(engine.connect(), mirror=args.debian_mirror or DEFAULT_MIRROR, log=out.print)
    out.print(f"imported {ROOTFS_REPO}:{SUITE} ({image.short_id})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from harness.layers.store import list_images
    from harness.sandbox import engine

    rows = list_images(engine.connect())
    if args.json:
        print_json([r.to_dict() for r in rows])
        return 0
    from rich.table import Table

    table = Table(title="aecc images")
    for column in ("layer", "reference", "id", "size", "created", "current"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.layer, r.reference, r.image_id, f"{r.size_bytes / 1e9:.2f} GB", r.created,
                      "yes" if r.current else "no")
    console().print(table)
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from harness.layers.store import prune
    from harness.sandbox import engine

    removed = prune(engine.connect(), everything=args.all, keep=tuple(args.keep or ()))
    for ref in removed:
        print(f"removed {ref}")
    print(f"{len(removed)} image(s) removed")
    return 0


def run_lock(args: argparse.Namespace) -> int:
    from harness.layers.build import commit_locks
    from harness.layers.model import named_layer
    from harness.sandbox import engine

    for path in commit_locks(engine.connect(), named_layer(args.target)):
        print(f"wrote {path}")
    return 0
