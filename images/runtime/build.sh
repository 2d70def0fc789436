# Layer `runtime`: the harness's in-container agent (`checker` package), installed read-only and
# byte-compiled now because the sandbox's root file system is read-only at run time.
rm -rf /opt/aecc/checker
cp -r /run/aecc-build-src/checker /opt/aecc/checker
find /opt/aecc/checker -name '__pycache__' -prune -exec rm -rf {} +
python -m compileall -q /opt/aecc/checker
site=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo /opt/aecc > "$site/aecc-agent.pth"
chmod -R a-w /opt/aecc/checker
python -m checker.probe > /dev/null
