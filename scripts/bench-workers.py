#!/usr/bin/env python3
"""Worker throughput (docs/performance.md, "Workers"): a node without the
workers role takes `magpie-bench chat` traffic for DURATION, leaving the
bus backlog unconsumed; then one `--roles workers` node drains it, and the
rate is read from its /metrics (`magpie_worker_events_total`,
`magpie_state_queue_writes_total`), with the CPU of it, Redis and NATS.

usage: scripts/bench-workers.py PGPORT DURATION TAG [magpie-bench chat load flags]
e.g.   scripts/bench-workers.py 5440 45s open --rate 1500

Needs `scripts/services.sh start` (Redis 6390, NATS 4230, PostgreSQL on
PGPORT) and a release build; makes its own database, key prefix and
streams and removes them afterwards."""
import json, os, re, subprocess, sys, time, urllib.request, random
pgport, duration, tag = sys.argv[1], sys.argv[2], sys.argv[3]
load = sys.argv[4:] or ["--inflight", "10"]
REL = os.path.join(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/magpie-target"), "release")
db = f"wb_{tag}_{random.randint(0, 99999)}"
subprocess.run(["psql", "-h", "127.0.0.1", "-p", pgport, "-U", "postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
env = {
    "MAGPIE_STORE": f"postgres://postgres@127.0.0.1:{pgport}/{db}",
    "MAGPIE_STATE": f"redis://127.0.0.1:6390/?prefix={db}",
    "MAGPIE_BUS": f"nats://127.0.0.1:4230/?stream={db}&partitions=4",
}
def delete_streams(names):
    """JetStream's stream delete API over a raw NATS connection."""
    import socket
    s = socket.create_connection(("127.0.0.1", 4230))
    s.recv(4096)
    out = b'CONNECT {"verbose":false}\r\n'
    for name in names:
        out += b"PUB $JS.API.STREAM.DELETE.%s 0\r\n\r\n" % name.encode()
    s.sendall(out + b"PING\r\n")
    buf = b""
    while b"PONG" not in buf:
        buf += s.recv(4096)
    s.close()

def pid_of(path):
    return int(open(path).read().strip())
redis_pid = pid_of("/var/tmp/magpie-services/redis/redis.pid")
nats_pid = pid_of("/var/tmp/magpie-services/nats/nats.pid")
try:
    args = [f"{REL}/magpie-bench", "chat", "--pairs", "100", *load, "--duration", duration,
            "--quiet", "--json", "--server-env", "MAGPIE_CLUSTER__ROLES=[edge,conn]"]
    for k, v in env.items():
        args += ["--server-env", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-2000:]); sys.exit(1)
    chat = json.loads(out.stdout)
    # The workers-only node.
    wenv = dict(os.environ, **env, MAGPIE_LOG="warn")
    p = subprocess.Popen([f"{REL}/magpie", "serve", "--roles", "workers", "--node", "workers-1", "--node-num", "900",
                          "--http-listen", "127.0.0.1:0", "--tcp-listen", "", "--internal-listen", "",
                          "--data-dir", f"/tmp/{db}"], env=wenv, stdout=subprocess.PIPE, text=True)
    line = json.loads(p.stdout.readline())
    base = "http://" + line["http"]
    def ticks(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    def sample():
        text = urllib.request.urlopen(base + "/metrics").read().decode()
        def val(pat):
            m = re.search(pat + r"\s+([0-9.e+]+)", text)
            return float(m.group(1)) if m else 0.0
        return (val(r'magpie_worker_events_total\{group="state"\}'),
                val(r'magpie_worker_events_total\{group="storage"\}'),
                val(r'magpie_state_queue_writes_total'))
    cpu0 = {k: ticks(v) for k, v in (("workers", p.pid), ("redis", redis_pid), ("nats", nats_pid))}
    t0 = time.time(); last = sample(); first_t = None; last_change = t0; last_t = t0
    while time.time() - last_change < 3 and time.time() - t0 < 300:
        time.sleep(0.1)
        s = sample(); now = time.time()
        if s != last:
            if first_t is None: first_t = last_t
            last_change = now; last = s
        last_t = now
    cpu1 = {k: ticks(v) for k, v in (("workers", p.pid), ("redis", redis_pid), ("nats", nats_pid))}
    hz = os.sysconf("SC_CLK_TCK")
    secs = last_change - (first_t or t0)
    p.terminate(); p.wait()
    state_ev, storage_ev, qw = last
    msgs = qw / 2
    res = {"tag": tag, "load": load, "chat": {k: chat.get(k) for k in ("msgs_per_sec", "delivered", "sent") if k in chat},
           "drain_secs": round(secs, 2), "state_events": state_ev, "storage_events": storage_ev,
           "messages_applied": msgs, "messages_per_s": round(msgs / secs), "bus_events_per_s": round((state_ev + storage_ev) / secs),
           "cpu_s": {k: round((cpu1[k] - cpu0[k]) / hz, 2) for k in cpu0}}
    print(json.dumps(res))
finally:
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", pgport, "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])
    delete_streams([f"{db}-{i}" for i in range(4)])
    keys = subprocess.run(["redis-cli", "-p", "6390", "--scan", "--pattern", f"{db}:*"], capture_output=True, text=True).stdout.split()
    for i in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-p", "6390", "del"] + keys[i:i+500], capture_output=True)
