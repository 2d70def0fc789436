"""`aecc models fetch|verify`: the offline model store X-ARES's ASR and retrieval tasks load from.

`fetch` runs where the Hugging Face Hub can be reached and writes DIR (copy it to the scoring
machines whole); `verify` checks a copied store against its manifest, as `aecc score --models DIR`
does before its score container starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import console, print_json, progress_printer


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the offline model store: fetch X-ARES's pretrained dependencies, verify a copy")
    actions = m.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    f = actions.add_parser("fetch", help="download what the registry's tasks declare (needs the hub) into DIR")
    f.add_argument("--out", required=True, help="the store folder (created if missing): DIR/<org>/<repo>/..., "
                                                "DIR/manifest.json")
    f.add_argument("--tasks", nargs="+", metavar="TASK",
                   help="registry tasks whose dependencies to fetch (default: every task that declares one)")
    f.add_argument("--endpoint", help="the hub to download from (default: $HF_ENDPOINT or https://huggingface.co)")
    f.add_argument("--ca-bundle", help="PEM bundle the download trusts for TLS (default: AECC_CA_BUNDLE, PIP_CERT "
                                       "or the system's)")
    f.add_argument("--force", action="store_true", help="download again even when the store already verifies")
    f.add_argument("--json", action="store_true", help="print the verified store as JSON")
    f.set_defaults(func=run_fetch)
    v = actions.add_parser("verify", help="check a store against its manifest (every file's sha256)")
    v.add_argument("store", help="the store folder")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run_verify)


def _describe(store) -> dict:
    return {"root": str(store.root), "origin": store.origin.value, "endpoint": store.endpoint,
            "created_at": store.created_at, "manifest_sha256": store.digest,
            "models": [{"repo": m.repo, "xares_dependency": m.xares_dependency, "parts": [p.value for p in m.parts],
                        "revision": m.revision, "dtype": m.dtype, "files": len(m.files), "bytes": m.bytes}
                       for m in store.models]}


def _print(store, out) -> None:
    from rich.table import Table

    table = Table(title=f"model store {store.root} ({store.origin.value})")
    for column in ("repository", "X-ARES name", "parts", "revision", "dtype", "files", "MB"):
        table.add_column(column)
    for m in store.models:
        table.add_row(m.repo, m.xares_dependency, ", ".join(p.value for p in m.parts), (m.revision or "-")[:12],
                      m.dtype or "-", str(len(m.files)), f"{m.bytes / 1e6:.1f}")
    out.print(table)
    out.print(f"manifest sha256 {store.digest}", highlight=False)


def run_fetch(args: argparse.Namespace) -> int:
    from harness import paths
    from harness.layers.build import build_chain
    from harness.layers.model import runtime_layer
    from harness.layers.options import BuildOptions
    from harness.sandbox import engine
    from harness.sandbox.profiles import load_profile
    from harness.tasks import models
    from harness.tasks.registry import load_registry

    out = console()
    registry = load_registry()
    entries = [registry.get(t) for t in args.tasks] if args.tasks else [e for e in registry if e.pretrained_dependencies]
    needed = [d for e in entries for d in e.pretrained_dependencies]
    options = BuildOptions.from_environment(ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None)
    client = engine.connect()
    runtime = build_chain(client, runtime_layer(), log=lambda m: None)[-1].image
    spec = models.ModelFetchSpec(out=Path(args.out), dependencies=tuple(needed), runtime=runtime,
                            profile=load_profile("cpu"), log_dir=paths.logs(),
                            endpoint=args.endpoint or models.default_endpoint(), ca_bundle=options.ca_bundle,
                            force=args.force)
    store = models.fetch(client, spec, progress=progress_printer(out))
    if args.json:
        print_json(_describe(store))
    else:
        _print(store, out)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from harness.tasks import models

    store = models.verify_store(Path(args.store))
    if args.json:
        print_json(_describe(store))
    else:
        out = console()
        _print(store, out)
        out.print("[green]every file matches the manifest[/]")
    return 0
