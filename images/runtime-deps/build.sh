# Layer `runtime-deps`: what the trusted runtime needs on top of torch. torchaudio must equal
# torch's version exactly; from torchaudio 2.9 on, loading audio goes through torchcodec, which
# needs FFmpeg's shared libraries (Debian's). Constraining torch stops pip from replacing it.
apt-get update
apt-get install -y --no-install-recommends ffmpeg
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
echo "torch==${AECC_TORCH_VERSION}" > /tmp/aecc-constraints.txt
pip install --no-cache-dir -c /tmp/aecc-constraints.txt \
    "torchaudio==${AECC_TORCHAUDIO_VERSION}" \
    "torchcodec==${AECC_TORCHCODEC_VERSION}" \
    "xares==${AECC_XARES_VERSION}"
rm -f /tmp/aecc-constraints.txt
# Fail the build, not a later task, if the set does not import or cannot reach FFmpeg.
python - <<'PY'
import torch, torchaudio, xares  # noqa: F401
from torchcodec.decoders import AudioDecoder  # loads FFmpeg's libraries
assert torchaudio.__version__.split("+")[0] == torch.__version__.split("+")[0], (torchaudio.__version__, torch.__version__)
print("runtime-deps ok:", torch.__version__, torchaudio.__version__)
PY
