"""Shared by the hostile cases: a small honest encoder they build on, and a way to report facts.

16 kHz in, one 64-d frame per 20 ms out (a strided convolution: batch- and padding-independent),
so a case that misbehaves in one way still meets the rest of the contract. `facts()` prints one
line `HOSTILE-FACTS <tag> <json>` that the tests read back from the stage's log.
"""

import json
import sys

import torch
from torch import nn


def facts(tag, data):
    print(f"HOSTILE-FACTS {tag} {json.dumps(data, sort_keys=True, default=str)}", flush=True)
    sys.stdout.flush()


def in_encode_stage():
    """True once the encode has its label-free audio at /audio (its own container, or the check's
    container after the host's go, when the audio is linked in). A hostile encoder that behaves in
    the checks and misbehaves only here is what the encode-stage defences are for."""
    import os

    return os.path.isfile("/audio/0/order.json")


def errno_of(fn, *args, **kw):
    """Call fn; return 'ok' (or its result), or the errno / exception name it raised."""
    try:
        out = fn(*args, **kw)
        return "ok" if out is None else out
    except OSError as exc:
        return exc.errno if exc.errno is not None else type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - the fact is what was raised
        return type(exc).__name__


class BaseEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_rate = 16000
        self.output_dim = 64
        self.hop_size_in_ms = 20
        self.conv = nn.Conv1d(1, 64, kernel_size=320, stride=320)
        generator = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(64, 1, 320, generator=generator) * 0.05)
            self.conv.bias.zero_()

    def forward(self, audio):
        return torch.tanh(self.conv(audio.unsqueeze(1))).transpose(1, 2)
