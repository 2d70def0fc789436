# Layer `torch-<version>[-cpu]`: PyPI's torch wheel for x86_64 (the CUDA build, which is what a T4
# runs), or the `+cpu` build from PyTorch's CPU index (AECC_TORCH_SPEC, AECC_PIP_INDEX_ARGS); constrained
# with the companion table like every install on a torch layer, locked after the first build.
aecc_pip_install --no-cache-dir "${AECC_TORCH_SPEC:-torch==${AECC_TORCH_VERSION}}"
python -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if v == '${AECC_TORCH_VERSION}' else 'torch ' + v)"
