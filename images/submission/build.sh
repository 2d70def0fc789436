# Layer `submission-<sha>`: a participant's files and requirements on top of the torch layer they
# asked for. Runs as the sandbox user (uid 10001), hardened, with network: `pip install` may run
# the participant's setup code, so it gets nothing but its own files and PyPI.
# No pip of its own (ensurepip costs seconds per submission): the torch layer's pip installs into
# this venv through `--python`.
python -m venv --without-pip /opt/submission/venv
site=$(/opt/submission/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
base=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# The torch layer's packages are visible (and count as installed for pip), not copied.
echo "$base" > "$site/aecc-base.pth"
# The harness mounts its agent here at run time (read-only); the image never carries a copy.
echo /opt/aecc > "$site/aecc-agent.pth"
cp -r /run/aecc-build-src/submission /opt/submission/src
# torch and its companions are the layer's (constraints); a requirement that needs another torch
# fails here, loudly. With a lock (a rebuild), exactly the first build's packages are installed.
AECC_PIP="/opt/venv/bin/pip --python /opt/submission/venv/bin/python"
if [ -f /opt/submission/src/requirements.txt ]; then
    aecc_pip_install -r /opt/submission/src/requirements.txt
else
    aecc_pip_install
fi
