"""Uses FlashAttention-2 when it imports: works here, but the T4 cannot run it. Warned statically."""
try:
    import flash_attn
except ImportError:
    flash_attn = None

from aecc_hostile_base import BaseEncoder


class HostileEncoder(BaseEncoder):
    pass
