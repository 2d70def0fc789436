# Layer `torch-<version>`: PyPI's torch wheel for x86_64 (the CUDA build, which is what a T4 runs).
pip install --no-cache-dir "torch==${AECC_TORCH_VERSION}"
python -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if v == '${AECC_TORCH_VERSION}' else 'torch ' + v)"
