# Layer `base`: Debian bookworm + its Python 3.11 (the minor version Colab runs) in a venv at
# /opt/venv, and the unprivileged user the sandbox runs as. Runs as root inside the parent image.
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv ca-certificates
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
python3 -m venv /opt/venv
# bookworm's pip (23.0) predates `--uploaded-prior-to`; the pinned pip is hash-checked.
/opt/venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r /run/aecc-build/pip.txt
groupadd --gid 10001 aecc
useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin aecc
mkdir -p /opt/aecc
# Submission images install their requirements here as the sandbox user, never as root.
mkdir -p /opt/submission && chown 10001:10001 /opt/submission
/opt/venv/bin/python -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"
