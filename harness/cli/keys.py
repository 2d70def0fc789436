"""`aecc keys`: make the Ed25519 pair that signs results, and print a public key's id.

The private key is written once, 0600, and never printed; only the key id and the paths are shown,
so that the output of this command can go into any log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import console


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("keys", help="make the Ed25519 key pair that signs results; print a key id")
    actions = k.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="write DIR/signing.key (0600) and DIR/signing.pub; never overwrites")
    init.add_argument("--out", required=True, help="folder for the pair (created 0700 if missing)")
    init.set_defaults(func=run_init)
    ident = actions.add_parser("id", help="print the key id (sha256 of the DER public key) of a public key PEM")
    ident.add_argument("pubkey", help="a public key PEM (signing.pub)")
    ident.set_defaults(func=run_id)


def run_init(args: argparse.Namespace) -> int:
    from rich.text import Text

    from harness.attest import SIGNING_KEY_ENV, generate_keypair

    pair = generate_keypair(Path(args.out))
    out = console()
    out.print(Text(f"private key: {pair.private_path} (mode 0600; keep it on this host, back it up offline)"),
              highlight=False)
    out.print(Text(f"public key:  {pair.public_path} (publish it with the results)"), highlight=False)
    out.print(Text(f"sign with:   aecc score ... --key {pair.private_path}   (or {SIGNING_KEY_ENV}=...)"),
              highlight=False)
    # The id alone on stdout: scripts read it, people compare it with the published one.
    sys.stdout.write(f"key id: {pair.key_id}\n")
    return 0


def run_id(args: argparse.Namespace) -> int:
    from harness.attest import key_id, load_public_key

    sys.stdout.write(key_id(load_public_key(Path(args.pubkey))) + "\n")
    return 0
