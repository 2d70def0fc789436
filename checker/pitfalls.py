"""Static scan of a submission's Python files for things that break or slow down on a T4.

Text search only: nothing is imported or executed, so the scan is safe to run anywhere and
sees code paths that a CPU-only check never takes (a `bfloat16` autocast behind
`if torch.cuda.is_available()`). Findings are warnings, never failures: a mention is not a use,
and the participant is the one who knows which branch runs.

The T4 is compute capability 7.5 (Turing): no native bfloat16, no TF32, no FlashAttention-2
(sm_80+), one GPU.
"""

from __future__ import annotations

import dataclasses
import os
import re

#: Stop reading after this many files / bytes per file: the scan is advice, not a gate.
MAX_FILES = 2000
MAX_FILE_BYTES = 2 * 1024**2
MAX_FINDINGS = 50


@dataclasses.dataclass(frozen=True)
class Pitfall:
    id: str
    pattern: re.Pattern
    reason: str
    fix: str
    #: the finding is dropped when the same file also matches this (e.g. a guard)
    unless_in_file: re.Pattern | None = None


PITFALLS: tuple[Pitfall, ...] = (
    Pitfall(
        "bfloat16",
        re.compile(r"\bbfloat16\b|\bbf16\b"),
        "the T4 (sm_75) has no native bfloat16: bf16 kernels are emulated (much slower) or refused",
        "use torch.float16 autocast or float32 on the T4",
    ),
    Pitfall(
        "flash_attn",
        re.compile(r"\bflash_attn\b|flash_attention_2|\bflash-attn\b"),
        "FlashAttention-2 needs compute capability 8.0+ (Ampere); the T4 is sm_75 and it will not load",
        "use torch.nn.functional.scaled_dot_product_attention or attn_implementation='sdpa'/'eager'",
    ),
    Pitfall(
        "allow_tf32",
        re.compile(r"\ballow_tf32\b|set_float32_matmul_precision"),
        "TF32 is an Ampere feature: on the T4 matmuls run in full float32 (the harness also sets "
        "NVIDIA_TF32_OVERRIDE=0), so speed or numbers tuned with TF32 will differ",
        "do not rely on TF32; measure speed and accuracy in float32",
    ),
    Pitfall(
        "device_index",
        re.compile(r"""["']cuda:[1-9][0-9]*["']|set_device\(\s*[1-9]|device_ids\s*=|\bDataParallel\b"""),
        "the T4 runtime has exactly one GPU (cuda:0); other device indices or multi-GPU wrappers fail",
        "use torch.device('cuda' if torch.cuda.is_available() else 'cpu') or follow the input's device",
    ),
    Pitfall(
        "unguarded_cuda",
        re.compile(r"\.cuda\(\s*\)"),
        "`.cuda()` without a torch.cuda.is_available() guard fails wherever the encoder runs on CPU "
        "(this checker, CPU-only machines)",
        "move with `.to(audio.device)` or guard with torch.cuda.is_available()",
        unless_in_file=re.compile(r"cuda\.is_available\(\)"),
    ),
)


def python_files(root: str) -> list[str]:
    """Regular .py files under `root`, relative paths, sorted; symlinks are not followed."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".py") and os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, root))
                if len(found) >= MAX_FILES:
                    return found
    return found


def scan(root: str) -> dict:
    """Scan every .py file under `root`.

    Returns:
        {"files_scanned": int, "findings": [{"pitfall", "file", "line", "text", "reason", "fix"}],
         "truncated": bool}
    """
    findings: list[dict] = []
    files = python_files(root)
    truncated = len(files) >= MAX_FILES
    for rel in files:
        try:
            with open(os.path.join(root, rel), "rb") as fh:
                text = fh.read(MAX_FILE_BYTES).decode("utf-8", "replace")
        except OSError:
            continue
        lines = text.splitlines()
        for pitfall in PITFALLS:
            if pitfall.unless_in_file is not None and pitfall.unless_in_file.search(text):
                continue
            for number, line in enumerate(lines, start=1):
                if pitfall.pattern.search(line):
                    if len(findings) >= MAX_FINDINGS:
                        truncated = True
                        break
                    findings.append(
                        {
                            "pitfall": pitfall.id,
                            "file": rel,
                            "line": number,
                            "text": line.strip()[:200],
                            "reason": pitfall.reason,
                            "fix": pitfall.fix,
                        }
                    )
    return {"files_scanned": len(files), "findings": findings, "truncated": truncated}
