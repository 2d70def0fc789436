# Layer `runtime-deps`: what the trusted runtime needs on top of torch. torchaudio and torchcodec are
# the builds made for this torch (harness/layers/companions.json, also the constraints file); from
# torchaudio 2.9 on, loading audio goes through torchcodec, which needs FFmpeg's shared libraries
# (Debian's). The constraints also keep pip from replacing torch.
apt-get update
apt-get install -y --no-install-recommends ffmpeg
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
aecc_pip_install --no-cache-dir \
    "torchaudio==${AECC_TORCHAUDIO_VERSION}" \
    "torchcodec==${AECC_TORCHCODEC_VERSION}" \
    "xares==${AECC_XARES_VERSION}"
# Fail the build, not a later task, if the set does not import or cannot reach FFmpeg.
python - <<'PY'
import torch, torchaudio, xares  # noqa: F401
from torchcodec.decoders import AudioDecoder  # loads FFmpeg's libraries
assert torchaudio.__version__.split("+")[0] == torch.__version__.split("+")[0], (torchaudio.__version__, torch.__version__)
print("runtime-deps ok:", torch.__version__, torchaudio.__version__)
PY
