"""The container runner applies every limit of the profile on the real engine and classifies how a
run ended from the container's state (and its own kills), never from what the container printed.
Every container it starts is gone afterwards."""

from __future__ import annotations

import json

import pytest

from harness.errors import UsageError
from harness.stage_names import Stage
from harness.sandbox.run import run_stage
from harness.sandbox.spec import Mount, Outcome, RunSpec


def run_py(client, profile, image, code, tmp_path, *, stage=Stage.CHECK, wall=60.0, mounts=(), **kw):
    spec = RunSpec(stage=stage, image=image, command=("python", "-c", code), mounts=tuple(mounts),
                   wall_clock_s=wall, **kw)
    return run_stage(client, profile, spec, tmp_path / "run.log")


def facts(result) -> dict:
    """The last line of the log is a JSON object the probe code printed."""
    lines = [l for l in result.log_path.read_text().splitlines() if l.startswith("{")]
    assert lines, result.log_path.read_text()
    return json.loads(lines[-1])


def test_ok_run_is_ok_and_container_is_removed(client, small_profile, base_image, tmp_path):
    result = run_py(client, small_profile, base_image, "print('hello')", tmp_path)
    assert result.outcome is Outcome.OK and result.exit_code == 0
    assert "hello" in result.log_path.read_text()
    assert not client.containers.list(all=True, filters={"name": result.container_name})


def test_nonzero_exit_is_failed(client, small_profile, base_image, tmp_path):
    result = run_py(client, small_profile, base_image, "import sys; sys.exit(3)", tmp_path)
    assert result.outcome is Outcome.FAILED and result.exit_code == 3
    assert result.outcome.is_submission_failure


def test_memory_hog_is_oom(client, small_profile, base_image, tmp_path):
    code = "x = []\nwhile True: x.append(bytearray(16 * 1024 * 1024))"
    result = run_py(client, small_profile, base_image, code, tmp_path)
    assert result.outcome is Outcome.OOM, result
    assert result.oom_killed and result.exit_code == 137


def test_printing_oom_text_is_not_oom(client, small_profile, base_image, tmp_path):
    code = "import sys; print('CUDA out of memory. Killed'); sys.exit(1)"
    result = run_py(client, small_profile, base_image, code, tmp_path)
    assert result.outcome is Outcome.FAILED


def test_timeout_kills_even_a_process_ignoring_sigterm(client, small_profile, base_image, tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)"
    result = run_py(client, small_profile, base_image, code, tmp_path, wall=2.0)
    assert result.outcome is Outcome.TIMEOUT, result
    assert 2.0 <= result.duration_s < 20, result.duration_s
    assert not client.containers.list(all=True, filters={"name": result.container_name})


def test_pids_limit_holds(client, small_profile, base_image, tmp_path):
    code = (
        "import os, json, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 1000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(json.dumps({'forked': n, 'errno': e.errno}))\n"
    )
    result = run_py(client, small_profile.replace(pids_limit=32), base_image, code, tmp_path, wall=60)
    data = facts(result)
    assert data["errno"] == 11  # EAGAIN from the pids cgroup
    assert data["forked"] < 32


def test_network_off_has_only_loopback(client, small_profile, base_image, tmp_path):
    code = (
        "import os, json, socket\n"
        "err = None\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
        "except OSError as e:\n"
        "    err = e.errno\n"
        "print(json.dumps({'ifaces': sorted(os.listdir('/sys/class/net')), 'errno': err}))\n"
    )
    data = facts(run_py(client, small_profile, base_image, code, tmp_path, stage=Stage.CHECK))
    assert data["ifaces"] == ["lo"]
    assert data["errno"] is not None


def test_fetch_stage_has_network(client, small_profile, base_image, tmp_path):
    code = "import os, json; print(json.dumps({'ifaces': sorted(os.listdir('/sys/class/net'))}))"
    data = facts(run_py(client, small_profile, base_image, code, tmp_path, stage=Stage.FETCH))
    assert "eth0" in data["ifaces"]


def test_root_is_read_only_and_tmp_is_capped(client, small_profile, base_image, tmp_path):
    code = (
        "import json, os\n"
        "out = {}\n"
        "for path in ('/usr/evil', '/etc/passwd', '/opt/venv/evil'):\n"
        "    try:\n"
        "        open(path, 'a').write('x'); out[path] = 'written'\n"
        "    except OSError as e:\n"
        "        out[path] = e.errno\n"
        "written = 0\n"
        "try:\n"
        "    with open('/tmp/fill', 'wb') as fh:\n"
        "        while written < 64 * 1024 * 1024:\n"
        "            fh.write(b'x' * 1048576); fh.flush(); written += 1048576\n"
        "except OSError as e:\n"
        "    out['tmp_errno'] = e.errno\n"
        "out['tmp_written'] = written\n"
        "print(json.dumps(out))\n"
    )
    data = facts(run_py(client, small_profile, base_image, code, tmp_path))
    assert data["/usr/evil"] in (13, 30) and data["/etc/passwd"] in (13, 30) and data["/opt/venv/evil"] in (13, 30)
    assert data["tmp_errno"] == 28  # ENOSPC
    assert data["tmp_written"] <= 16 * 1024 * 1024


def test_not_root_no_capabilities_no_new_privileges_seccomp(client, small_profile, base_image, tmp_path):
    code = (
        "import json, os, subprocess\n"
        "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "u = subprocess.run(['unshare', '-U', 'true'], capture_output=True)\n"
        "print(json.dumps({'uid': os.getuid(), 'cap': st['CapEff'].strip(), 'capbnd': st['CapBnd'].strip(),\n"
        "  'nnp': st['NoNewPrivs'].strip(), 'seccomp': st['Seccomp'].strip(), 'unshare_rc': u.returncode}))\n"
    )
    data = facts(run_py(client, small_profile, base_image, code, tmp_path))
    assert data["uid"] == 10001
    assert int(data["cap"], 16) == 0 and int(data["capbnd"], 16) == 0
    assert data["nnp"] == "1" and data["seccomp"] == "2"
    assert data["unshare_rc"] != 0


def test_logs_are_capped_and_the_rest_counted(client, small_profile, base_image, tmp_path):
    total = 1024 * 1024
    code = f"import sys\nfor _ in range({total // 1024}): sys.stdout.write('y' * 1023 + '\\n')"
    result = run_py(client, small_profile, base_image, code, tmp_path)
    assert result.outcome is Outcome.OK
    assert result.log_path.stat().st_size == result.log_bytes == small_profile.log_cap_bytes
    assert result.log_bytes + result.log_bytes_dropped == total


def test_mounts_are_read_only_by_default(client, small_profile, base_image, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "data.txt").write_text("original")
    code = (
        "import json\n"
        "try:\n"
        "    open('/in/data.txt', 'w').write('changed'); r = 'written'\n"
        "except OSError as e:\n"
        "    r = e.errno\n"
        "print(json.dumps({'r': r, 'read': open('/in/data.txt').read()}))\n"
    )
    data = facts(run_py(client, small_profile, base_image, code, tmp_path, mounts=[Mount(src, "/in")]))
    assert data == {"r": 30, "read": "original"}
    assert (src / "data.txt").read_text() == "original"


def test_writable_mount_needs_a_stage_that_allows_it(client, small_profile, base_image, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    spec = RunSpec(stage=Stage.BUILD, image=base_image, command=("true",), mounts=(Mount(out, "/out", read_only=False),))
    with pytest.raises(UsageError, match="writable"):
        run_stage(client, small_profile, spec, tmp_path / "log")
    code = "open('/out/result.txt', 'w').write('done')"
    result = run_py(client, small_profile, base_image, code, tmp_path, mounts=[Mount(out, "/out", read_only=False)])
    assert result.outcome is Outcome.OK and (out / "result.txt").read_text() == "done"


def test_missing_image_is_infra_error_not_failure(client, small_profile, tmp_path):
    result = run_py(client, small_profile, "aecc/no-such-image:0", "pass", tmp_path)
    assert result.outcome is Outcome.INFRA_ERROR
    assert result.outcome.is_infra_failure and not result.outcome.is_submission_failure


def test_trusted_build_is_refused_outside_build_stage(base_image):
    with pytest.raises(UsageError):
        RunSpec(stage=Stage.ENCODE, image=base_image, command=("true",), trusted_build=True)


def test_mount_source_must_exist(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        Mount(tmp_path / "absent", "/x")


@pytest.mark.parametrize(
    "state, timed_out, gpu, expected",
    [
        ({"ExitCode": 0, "OOMKilled": False}, False, False, Outcome.OK),
        ({"ExitCode": 1, "OOMKilled": False}, False, False, Outcome.FAILED),
        ({"ExitCode": 137, "OOMKilled": False}, False, False, Outcome.FAILED),  # killed itself: not ours
        ({"ExitCode": 137, "OOMKilled": True}, False, False, Outcome.OOM),
        ({"ExitCode": 0, "OOMKilled": True}, False, False, Outcome.OOM),  # a worker died at the cap
        ({"ExitCode": 137, "OOMKilled": False}, True, False, Outcome.TIMEOUT),
        ({"ExitCode": 137, "OOMKilled": True}, True, False, Outcome.TIMEOUT),
        ({"ExitCode": 137, "OOMKilled": False}, False, True, Outcome.GPU_OOM),
    ],
)
def test_classification_precedence(state, timed_out, gpu, expected):
    from harness.sandbox.run import classify

    outcome, detail = classify(state, timed_out=timed_out, gpu_exceeded=gpu, stage=Stage.ENCODE, wall_clock_s=5,
                               memory_bytes=2**30, gpu_limit_bytes=15 * 2**30, gpu_peak_bytes=16 * 2**30)
    assert outcome is expected
    assert (detail == "") == (expected is Outcome.OK)


def test_peak_memory_is_measured_from_the_host(client, small_profile, base_image, tmp_path):
    code = "import time\nx = bytearray(120 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(1)"
    result = run_py(client, small_profile, base_image, code, tmp_path)
    assert result.outcome is Outcome.OK
    assert result.peak_memory_bytes is not None
    assert 120 * 1024**2 <= result.peak_memory_bytes <= small_profile.memory_bytes


def test_network_stages_reach_the_internet_but_not_the_host(client, small_profile, base_image, tmp_path):
    """Fetch and build run on aecc-egress: PyPI answers, a service listening on the host does not."""
    import socket
    import threading

    from harness.sandbox import egress

    assert egress.network_for(client) == egress.NETWORK, "run scripts/engine-setup.sh"
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    listener.settimeout(20)
    port = listener.getsockname()[1]
    accepted = []
    def accept() -> None:
        try:
            accepted.append(listener.accept())
        except OSError:  # the expected end: nobody connected before the timeout
            pass

    threading.Thread(target=accept, daemon=True).start()
    gateway = client.networks.get(egress.NETWORK).attrs["IPAM"]["Config"][0]["Gateway"]
    code = (
        "import json, socket\n"
        "out = {}\n"
        f"for name, addr in (('gateway', ('{gateway}', {port})), ('docker0', ('172.17.0.1', {port})),\n"
        "                   ('pypi', ('pypi.org', 443))):\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=4).close(); out[name] = 'ok'\n"
        "    except OSError as e:\n"
        "        out[name] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    try:
        data = facts(run_py(client, small_profile, base_image, code, tmp_path, stage=Stage.FETCH))
    finally:
        listener.close()
    assert data["pypi"] == "ok"
    assert data["gateway"] != "ok" and data["docker0"] != "ok"
    assert not accepted


def test_a_kill_from_the_engine_is_infrastructure_and_a_self_kill_is_the_submissions(client, small_profile,
                                                                                       base_image, tmp_path):
    """A container the engine stops (its daemon shutting down, an operator's `docker stop`) is an
    infrastructure failure, retried, never the submission's; a process that ends itself with the same
    signal is the submission's failure (the engine records only the kills it sends)."""
    import threading
    import time
    import uuid

    own = run_py(client, small_profile, base_image, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
                 tmp_path / "own")
    assert own.outcome is Outcome.FAILED and own.exit_code == 143, (own.outcome, own.exit_code, own.detail)

    label = uuid.uuid4().hex
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=run_py(
        client, small_profile, base_image, "import time; print('up', flush=True); time.sleep(120)", tmp_path / "stopped",
        labels={"org.aecc.test": label})))
    worker.start()
    deadline = time.monotonic() + 60
    while not (found := client.containers.list(filters={"label": f"org.aecc.test={label}"})):
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.2)
    time.sleep(1)
    found[0].kill(signal="SIGTERM")
    worker.join(timeout=120)
    stopped = box["result"]
    assert stopped.outcome is Outcome.INFRA_ERROR, (stopped.outcome, stopped.exit_code, stopped.detail)
    assert "the engine stopped the container (signal 15" in stopped.detail
