"""Imports FlashAttention-2 unconditionally (sm_80+ only; not installed): the import fails."""
import flash_attn  # noqa: F401

from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    pass
