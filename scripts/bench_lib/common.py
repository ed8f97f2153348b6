"""What every section of scripts/bench shares: its settings (from the environment), ports, the
load generator, starting and stopping the receiver, the discard ceiling, /metrics histograms."""
import json, os, resource, shutil, signal, socket, subprocess, tempfile, time, urllib.request


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release")
ONLY = os.environ.get("ONLY", "")
DURATION = int(os.environ.get("DURATION", "3" if ONLY == "types" else "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "16"))
BATCH_BYTES = int(os.environ.get("BATCH_BYTES", str(1 << 20)))
ROUNDS = max(1, int(os.environ.get("ROUNDS", "3")))
SECRET = "bench-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.1)
    return False


def status_mib(pid, field):
    """A memory field of /proc/<pid>/status in MiB: VmHWM (peak RSS) or VmRSS (RSS now)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def settle():
    """Start each run with the page cache's dirty data written back, so runs do not pay for each other."""
    os.sync()
    time.sleep(1)


def run_measured(cmd):
    """Runs a command to its end; returns its stdout and the CPU seconds (user + system) it took,
    from the rusage of reaped children before and after (only this one is reaped meanwhile)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def loadgen(url, *extra, connections=None):
    """One loadgen run's JSON summary, with the CPU seconds the load generator itself took."""
    settle()
    cmd = [os.path.join(BIN, "loadgen"), "--url", url, "--secret", SECRET, "--connections", str(connections or CONNECTIONS),
           "--duration-secs", str(DURATION), "--batch-bytes", str(BATCH_BYTES), "--json", *extra]
    out, cpu = run_measured(cmd)
    summary = json.loads(out)
    summary["loadgen_cpu_secs"] = cpu
    return summary


def start(cmd, env=None):
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def ceiling(gzip, connections=None):
    port = free_port()
    proc = start([os.path.join(BIN, "ceiling"), f"127.0.0.1:{port}"])
    time.sleep(0.3)
    try:
        return loadgen(f"http://127.0.0.1:{port}/vercel/logs", *(["--gzip"] if gzip else []), connections=connections)
    finally:
        stop(proc)


def spillway(gzip, work, extra_env=None, config=None, data_root=None, path="/vercel/logs", prepare=None, load=(), inspect=None,
             scrape=None, connections=None, half_rate_run=True):
    port = free_port()
    data = tempfile.mkdtemp(dir=data_root or work)
    if prepare:
        prepare(data)
    env = {"SPILLWAY_LISTEN": f"127.0.0.1:{port}", "SPILLWAY_DATA_DIR": data, "SPILLWAY_DRAIN_SECRET": SECRET,
           "RUST_LOG": "warn", **(extra_env or {})}
    cmd = [os.path.join(BIN, "spillway"), "serve"] + (["--config", config] if config else [])
    proc = start(cmd, env)
    base = f"http://127.0.0.1:{port}"
    if not wait_http(base + "/readyz", 60):
        stop(proc)
        raise SystemExit("spillway did not become ready")
    try:
        flags = (["--gzip"] if gzip else []) + list(load)
        cpu = cpu_seconds(proc.pid)
        peak = loadgen(base + path, *flags, connections=connections)
        rss = status_mib(proc.pid, "VmHWM")
        moved = peak["mb_per_sec"] * 1e6 * peak["seconds"]
        peak["cpu_ns_per_byte"] = (cpu_seconds(proc.pid) - cpu) * 1e9 / moved if moved else float("nan")
        if not half_rate_run:
            return peak, None, rss
        half_rate = max(peak["batches"] / peak["seconds"] / 2, 0.5)
        if scrape is not None:
            scrape.append(metrics_text(base))
        half = loadgen(base + path, "--rate", f"{half_rate:.3f}", *flags)
        half["rate"] = half_rate
        if scrape is not None:
            scrape.append(metrics_text(base))
        return peak, half, rss
    finally:
        stop(proc)
        if inspect:
            inspect(data)
        shutil.rmtree(data, ignore_errors=True)


def metrics_text(base):
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        return r.read().decode()


def histogram(text, name, **labels):
    """The cumulative buckets of one histogram series in Prometheus text: [(le, count)]."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "_bucket{"):
            continue
        fields = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.rindex("}")].split(","))
        fields = {k: v.strip('"') for k, v in fields.items()}
        if all(fields.get(k) == v for k, v in labels.items()):
            out.append((float(fields["le"]), float(line.rsplit(" ", 1)[1])))
    return out


def bucket_quantile(before, after, q):
    """The upper bound (ms) of the bucket holding quantile q of what was observed between two scrapes."""
    was = dict(before)
    counts = [(le, n - was.get(le, 0)) for le, n in after]
    if not counts or counts[-1][1] <= 0:
        return float("nan")
    for le, n in counts:
        if n >= q * counts[-1][1]:
            return le * 1000
    return float("inf")


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
