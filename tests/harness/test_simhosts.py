"""The simulated-host server of the benchmark (bench/simhosts.py) answers a captured command as
the box did, per host and occurrence, with the client's own hex tokens, and counts a miss."""
import json
import signal
import subprocess
import sys
import time

import paramiko

from lab.config import REPO_ROOT

CANARY = "sudo -H -n sh -c 'canary 0123456789ab'"


def _capture(path):
    records = [
        {"command": "sudo -H -n sh -c true", "stdin": False, "stdout": "", "stderr": "", "status": 0},
        {"command": "sudo -H -n sh -c 'state read'", "stdin": False, "stdout": "fresh\n",
         "stderr": "", "status": 0},
        {"command": "sudo -H -n sh -c 'state read'", "stdin": False, "stdout": "installed\n",
         "stderr": "", "status": 0},
        {"command": CANARY, "stdin": False, "stdout": "lockdown-canary id=0123456789ab status=sent\n",
         "stderr": "warning\n", "status": 3},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _run(client, command):
    stdin, stdout, stderr = client.exec_command(command, timeout=10)
    stdin.close()
    return stdout.read().decode(), stderr.read().decode(), stdout.channel.recv_exit_status()


def test_replay_answers_per_host_and_occurrence_and_counts_misses(tmp_path):
    capture, ready = tmp_path / "capture.jsonl", tmp_path / "ready.json"
    _capture(capture)
    server = subprocess.Popen([sys.executable, "-m", "bench.simhosts", "replay", str(capture),
                               "--ready", str(ready)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (ready.exists() and ready.read_text()):
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        answers = {}
        for host in ("sim00001", "sim00002"):
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            client.connect("127.0.0.1", port=port, username=host, password="x",
                           look_for_keys=False, allow_agent=False, timeout=10)
            try:
                answers[host] = [_run(client, "sudo -H -n sh -c 'state read'") for _ in range(3)]
                answers[host].append(_run(client, CANARY.replace("0123456789ab", "fedcba987654")))
                answers[host].append(_run(client, "rm -rf /"))
            finally:
                client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    for host in ("sim00001", "sim00002"):  # each host counts its own occurrences
        assert [a[0] for a in answers[host][:3]] == ["fresh\n", "installed\n", "installed\n"]
        assert answers[host][3] == ("lockdown-canary id=fedcba987654 status=sent\n", "warning\n", 3)
        assert answers[host][4][2] == 127
    served = json.loads(ready.read_text())
    assert served["hosts"] == 2 and served["commands"] == 10 and served["missed"] == 2
