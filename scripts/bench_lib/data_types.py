"""ONLY=types: one row per Vercel data type at its own path, and a check that each type landed in
its own directory."""
import glob, os, shutil, statistics, sys, tempfile, time

from .common import BATCH_BYTES, CONNECTIONS, DURATION, ROUNDS, spillway


# (row, loadgen --type, --format): each type at its own path, /vercel/<type>, under the default drain.
DATA_TYPES = (("logs (ndjson)", "logs", "ndjson"), ("traces (proto)", "traces", "proto"), ("traces (json)", "traces", "json"),
              ("speed-insights (ndjson)", "speed-insights", "ndjson"), ("analytics (ndjson)", "analytics", "ndjson"),
              ("audit-log (ndjson)", "audit-log", "ndjson"))
TYPE_DIRS = ("logs", "traces", "speed-insights", "analytics", "audit-log", "dead-letter")


def tree_size(path):
    """Non-empty files and their bytes under a directory (0, 0 when it does not exist)."""
    files = size = 0
    for parent, _dirs, names in os.walk(path):
        for name in names:
            n = os.path.getsize(os.path.join(parent, name))
            files += n > 0
            size += n
    return files, size


def compilers_running():
    """Whether a cargo or rustc process is running beside the bench: its figures are then noisy."""
    for comm in glob.glob("/proc/[0-9]*/comm"):
        try:
            with open(comm) as f:
                if f.read().strip() in ("cargo", "rustc"):
                    return True
        except OSError:
            pass
    return False


def data_type_round(work, rows, noisy):
    """One round: each data type against a fresh receiver (its own peak RSS), logs first."""
    # Only the shutdown's 5 s drain delay differs from the defaults: 18 stops a round would wait it out.
    config = os.path.join(work, "types.toml")
    with open(config, "w") as f:
        f.write("[server]\ndrain_delay_secs = 0\n")
    logs_mb = None
    for name, slug, fmt in DATA_TYPES:
        stored = {}
        noisy[0] |= compilers_running()
        peak, half, rss = spillway(False, work, config=config, path=f"/vercel/{slug}", load=("--type", slug, "--format", fmt),
                                   inspect=lambda data: stored.update({d: tree_size(os.path.join(data, d)) for d in TYPE_DIRS}))
        noisy[0] |= compilers_running()
        logs_mb = logs_mb or peak["mb_per_sec"]
        rows.setdefault(name, []).append((peak, half, rss, peak["mb_per_sec"] / logs_mb, slug, stored))
        print(f"{name}: {peak['mb_per_sec']:.1f} MB/s, {peak['records_per_sec']:.0f} records/s, "
              f"p99 {half['latency_ms']['p99']:.2f} ms at half rate, RSS {rss:.0f} MiB, stored {stored}", file=sys.stderr)


def data_type_table(rows, noisy):
    """Prints the per-type table; returns the problems found (a type stored nowhere, or elsewhere, non-2xx)."""
    med = statistics.median
    problems = []
    print()
    print(f"per data type: {DURATION} s runs, {CONNECTIONS} connections, ~{BATCH_BYTES // 1024} KiB signed batches, "
          f"default file sink (fsync per batch); medians of {ROUNDS} interleaved rounds, peak RSS the largest")
    print(f"{'type':24} {'MB/s':>7} {'records/s':>10} {'of logs':>8} {'per round':>22} {'p99 max':>8} {'p50 half':>8} "
          f"{'p99 half':>8} {'RSS MiB':>7} {'files':>6} {'stored MB':>9} {'non-2xx'}")
    for name, rounds in rows.items():
        runs = [r[0] for r in rounds]
        halves = [r[1] for r in rounds]
        slug = rounds[0][4]
        non_2xx = {}
        for r in runs + halves:
            for status, n in r["non_2xx"].items():
                non_2xx[status] = non_2xx.get(status, 0) + n
        files = sum(r[5][slug][0] for r in rounds)
        stored = sum(r[5][slug][1] for r in rounds)
        elsewhere = {d: sum(r[5][d][1] for r in rounds) for d in TYPE_DIRS if d != slug}
        if files == 0 or stored == 0:
            problems.append(f"{name}: nothing stored in <data dir>/{slug}")
        if any(elsewhere.values()):
            problems.append(f"{name}: bytes outside <data dir>/{slug}: {elsewhere}")
        if non_2xx or any(r["accepted_records"] == 0 for r in runs):
            problems.append(f"{name}: non-2xx {non_2xx} or a run with nothing accepted")
        per_round = " ".join(f"{r[3]:.1%}" for r in rounds)
        print(f"{name:24} {med(r['mb_per_sec'] for r in runs):7.1f} {med(r['records_per_sec'] for r in runs):10.0f} "
              f"{med(r[3] for r in rounds):8.1%} {per_round:>22} {med(r['latency_ms']['p99'] for r in runs):8.2f} "
              f"{med(h['latency_ms']['p50'] for h in halves):8.2f} {med(h['latency_ms']['p99'] for h in halves):8.2f} "
              f"{max(r[2] for r in rounds):7.0f} {files:6} {stored / 1e6:9.1f} {non_2xx}")
    print("(records/s: spans/s for traces; MB/s: body bytes before compression, so protobuf and JSON traces differ per span;")
    print(" of logs: the type's MB/s over the logs row's in the same round; p99 max / p50 half / p99 half: acknowledgement")
    print(" latency in ms at max rate and at half of that run's max rate; files, stored MB: in <data dir>/<type>, all rounds)")
    if noisy[0]:
        print("NOTE: cargo or rustc ran beside the bench: these figures are noisy")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return problems


def data_types_main():
    work = tempfile.mkdtemp(prefix="spillway-bench-")
    rows, noisy = {}, [False]
    started = time.time()
    try:
        for round_no in range(1, ROUNDS + 1):
            print(f"round {round_no} of {ROUNDS}", file=sys.stderr)
            data_type_round(work, rows, noisy)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    problems = data_type_table(rows, noisy)
    print(f"(the section took {time.time() - started:.0f} s after the build)")
    return 1 if problems else 0
