import os
for _d in ("/tmp", "/opt/submission", "/opt/submission/venv", os.path.expanduser("~")):
    try:
        open(os.path.join(_d, "HOSTILE-ESCAPE-setup.py"), "w").write("ran")
    except OSError:
        pass
