"""`aecc export kubernetes INBOX... --out DIR`: the sandbox as Kubernetes Jobs, for a GPU cluster.

Parses and renders only (`harness.export.kubernetes` does the work); nothing is applied to a cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from checker.jobs import DEFAULT_MAX_SECONDS

from harness.cli.common import console


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="render the sandbox for another scheduler (Kubernetes Jobs)")
    targets = e.add_subparsers(dest="export_target", required=True, metavar="TARGET")
    k = targets.add_parser(
        "kubernetes", help="one Job per submission stage (fetch, check, encode), from the sandbox profile",
        description="Render Kubernetes manifests (Jobs, NetworkPolicies, claims, the agent ConfigMap, a "
                    "kustomization) and a README saying what the cluster must provide. Nothing is applied.")
    k.add_argument("inbox", nargs="+", metavar="INBOX", help="ZIP files, submission folders or folders of ZIPs")
    k.add_argument("--out", required=True, help="a new (or empty) folder for the manifests")
    k.add_argument("--profile", default="t4", help="sandbox profile (default t4)")
    data = k.add_mutually_exclusive_group()
    data.add_argument("--data-claim", metavar="NAME", help="PersistentVolumeClaim holding the prepared audio")
    data.add_argument("--data-host-path", metavar="PATH", help="folder holding the prepared audio on every node")
    k.add_argument("--namespace", default="aecc", help="namespace of everything rendered (default aecc)")
    k.add_argument("--registry", metavar="PREFIX", help="registry prefix the submission images are pushed under")
    tags = k.add_mutually_exclusive_group()
    tags.add_argument("--root-id", metavar="ID", help="the build machine's root image id (sha256:...): exact tags, "
                                                       "offline")
    tags.add_argument("--image-tag-from-engine", action="store_true",
                      help="read the root image id from the local engine (builds nothing)")
    k.add_argument("--resolve-before", metavar="INSTANT",
                   help="the --resolve-before the images were built with (it is part of their tags)")
    k.add_argument("--storage-class", metavar="NAME", help="StorageClass of the claims (default: the cluster's)")
    k.add_argument("--output-size", default="50GiB", help="size of each submission's output claim (default 50GiB)")
    k.add_argument("--encode-tasks", type=int, default=1, metavar="N",
                   help="tasks one encode Job encodes: its deadline is N x the stage's wall clock + 60 s")
    k.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help=f"time budget of the in-container checks (default {DEFAULT_MAX_SECONDS:g} s)")
    k.add_argument("--ttl-after-finished", default="168h", metavar="DURATION",
                   help="delete finished Jobs after this long (default 168h)")
    k.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.text import Text

    from harness.export.kubernetes import (
        DataSource,
        DataVolume,
        ExportSpec,
        collect_submissions,
        export_kubernetes,
        resolve_images,
    )
    from harness.sandbox.profiles import load_profile, parse_duration, parse_size

    data = None
    if args.data_claim:
        data = DataVolume(DataSource.CLAIM, args.data_claim)
    elif args.data_host_path:
        data = DataVolume(DataSource.HOST_PATH, args.data_host_path)
    spec = ExportSpec(out=Path(args.out), profile=load_profile(args.profile), namespace=args.namespace, data=data,
                      registry=args.registry, storage_class=args.storage_class,
                      output_bytes=parse_size(args.output_size, key="--output-size"), encode_tasks=args.encode_tasks,
                      max_seconds=args.max_seconds,
                      ttl_after_finished_s=parse_duration(args.ttl_after_finished, key="--ttl-after-finished"))
    submissions = collect_submissions([Path(p) for p in args.inbox])
    client = None
    if args.image_tag_from_engine:
        from harness.sandbox import engine

        client = engine.connect()
    images = resolve_images(submissions, root_id=args.root_id, client=client, resolve_before=args.resolve_before)
    exported = export_kubernetes(spec, images)

    out = console()
    out.print(Text(f"wrote {len(exported.files)} files for {len(images)} submission(s) to {exported.out}"),
              highlight=False)
    for ref in exported.pushed_refs:
        out.print(Text(f"  image {ref}"), highlight=False)
    if spec.registry:
        out.print(Text(f"push these images to {spec.registry} before applying (README.txt lists the commands)"),
                  highlight=False)
    for warning in exported.warnings:
        out.print(Text("warning: ", style="yellow") + Text(warning), highlight=False)
    out.print(Text(f"next: read {exported.out / 'README.txt'}, then kubectl apply -k {exported.out}"),
              highlight=False)
    return 0
