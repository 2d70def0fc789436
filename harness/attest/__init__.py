"""Signed results that anyone can verify offline with standard tools (issue 12).

The harness signs each `result.json` it writes and ranks only results whose signature verifies.
This package is that whole job, on the host only (no stage container ever sees a key), split by
what each part answers for:

- `keys`: the Ed25519 key pair: made (`generate_keypair`), read (`load_private_key`,
  `load_public_key`, `resolve_key_path`) and named (`key_id`);
- `dsse`: the formats (in-toto Statement v1 in a DSSE envelope) and signing: `statement`,
  `sign_result`, `write_envelope`, and the `Signer` a scoring run hands to the pipeline;
- `verify`: the strict offline check of an envelope (`verify_envelope`, `verify_paths`,
  `verify_report`), with one `VerifyProblem` id per kind of failure.

The public names are re-exported here: `from harness.attest import Signer, verify_paths`.
"""

from harness.attest.dsse import (
    ENVELOPE_NAME,
    HISTORY_DIR,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    RESULT_NAME,
    STATEMENT_TYPE,
    ZIP_NAME,
    ZIP_SUBJECT,
    Signer,
    pae,
    sign_and_write,
    sign_result,
    statement,
    write_envelope,
)
from harness.attest.keys import (
    KEY_FILE_CAP,
    PRIVATE_KEY_NAME,
    PUBLIC_KEY_NAME,
    SIGNING_KEY_ENV,
    KeyPair,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    resolve_key_path,
)
from harness.attest.verify import (
    ENVELOPE_CAP,
    VerifyOutcome,
    VerifyProblem,
    verify_envelope,
    verify_paths,
    verify_report,
)

__all__ = [
    "ENVELOPE_CAP", "ENVELOPE_NAME", "HISTORY_DIR", "KEY_FILE_CAP", "PAYLOAD_TYPE", "PREDICATE_TYPE",
    "PRIVATE_KEY_NAME", "PUBLIC_KEY_NAME", "RESULT_NAME", "SIGNING_KEY_ENV", "STATEMENT_TYPE", "ZIP_NAME",
    "ZIP_SUBJECT", "KeyPair", "Signer", "VerifyOutcome", "VerifyProblem", "generate_keypair", "key_id",
    "load_private_key", "load_public_key", "pae", "resolve_key_path", "sign_and_write", "sign_result",
    "statement", "verify_envelope", "verify_paths", "verify_report", "write_envelope",
]
