"""ONLY=latency: the file sink's acknowledgement latency at half of its maximum rate per sync-lane
count, beside a bare write + fdatasync loop on the same disk at the same rate; the CDF plots."""
import json, os, shutil, subprocess, sys, tempfile, time

from .common import (
    BATCH_BYTES, BIN, CONNECTIONS, DURATION, ROUNDS, bucket_quantile, histogram, settle, spillway,
)


def disk_sync_latency(work, rate, seconds):
    """The disk's own: a bare BATCH_BYTES write + fdatasync loop in `work` (the disk the sink
    writes to) at `rate` per second, open loop with latency counted from each scheduled start as
    loadgen counts it, into new 128 MiB files as the sink rotates them. The files are removed
    only after the loop, as the sink never removes its own (freeing a file's blocks mid-run is
    journal work the next fdatasync may have to wait for); synced pages are dropped from the page
    cache as the sink drops them (kept, gigabytes of them slow every later write down to reclaim).
    Returns ms quantiles."""
    settle()
    block = os.urandom(BATCH_BYTES)
    paths = []
    lat, fd, written = [], None, 0
    started = time.monotonic()
    for i in range(max(1, int(rate * seconds))):
        at = started + i / rate
        now = time.monotonic()
        if now < at:
            time.sleep(at - now)
        if fd is None or written >= 128 << 20:
            if fd is not None:
                os.close(fd)
            paths.append(os.path.join(work, f"disk-baseline-{len(paths)}"))
            fd, written = os.open(paths[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 0
        written += os.write(fd, block)
        os.fdatasync(fd)
        os.posix_fadvise(fd, written - len(block), len(block), os.POSIX_FADV_DONTNEED)
        lat.append((time.monotonic() - at) * 1000)
    os.close(fd)
    for path in paths:
        os.unlink(path)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    # [quantile, ms] points for the plot, at the quantiles loadgen --json reports its CDF at.
    cdf = [[p, q(p)] for p in [i / 100 for i in range(100)] + [0.999, 1.0]]
    return {"p50": q(0.5), "p99": q(0.99), "max": lat[-1], "cdf": cdf}


def latency_plot(out_dir, rows):
    """Writes the last round's CDFs (Spillway per lane count, the disk's loop beside each) as
    <out_dir>/latency.json and draws <out_dir>/latency-cdf.svg from it with the `plot` bin."""
    os.makedirs(out_dir, exist_ok=True)
    last = max(r[1] for r in rows)
    series = []
    for lanes, round_no, _peak, half, disk, _stages in rows:
        if round_no != last:
            continue
        series.append({"name": f"spillway, {lanes} sync lane(s), {half['rate']:.0f}/s", "points": half["latency_cdf_ms"]})
        series.append({"name": f"disk write + fdatasync, {half['rate']:.0f}/s (beside {lanes} lane(s))", "points": disk["cdf"]})
    title = (f"ack latency at half of max rate vs the disk's own ({BATCH_BYTES // 1024} KiB batches, "
             f"{CONNECTIONS} connections, {DURATION} s)")
    draw_plot(out_dir, "latency", {"kind": "cdf", "title": title, "x": "acknowledgement / write + fdatasync latency, ms (log)",
                                   "y": "fraction of requests", "series": series}, "latency-cdf.svg")


def draw_plot(out_dir, name, plot, svg_name):
    """Writes a plot's data as <out_dir>/<name>.json and draws it with the `plot` bin."""
    os.makedirs(out_dir, exist_ok=True)
    data = os.path.join(out_dir, name + ".json")
    with open(data, "w") as f:
        json.dump(plot, f)
    svg = os.path.join(out_dir, svg_name)
    subprocess.run([os.path.join(BIN, "plot"), "--input", data, "--output", svg], check=True)
    print(f"(plot: {svg}, data: {data})")


def latency_main():
    """ONLY=latency: the file sink's acknowledgement latency at half of its maximum rate (right
    after a max-rate run) for each of SYNC_LANES, next to the disk's own write + fdatasync loop
    at the same rate, in the same round; with the sink's stage breakdown from /metrics."""
    lanes_list = [int(x) for x in os.environ.get("SYNC_LANES", "1,2,4").split(",")]
    work = tempfile.mkdtemp(prefix="spillway-bench-")
    rows = []
    try:
        for round_no in range(1, ROUNDS + 1):
            for lanes in lanes_list:
                config = os.path.join(work, f"lanes-{lanes}.toml")
                with open(config, "w") as f:
                    f.write(f"[sinks.file]\nsync_lanes = {lanes}\n")
                scraped = []
                peak, half, rss = spillway(False, work, config=config, scrape=scraped)
                disk = disk_sync_latency(work, half["rate"], DURATION)
                stages = {}
                for stage in ("queue", "write", "sync"):
                    b, a = (histogram(t, "spillway_sink_stage_seconds", sink="file", stage=stage) for t in scraped)
                    stages[stage] = bucket_quantile(b, a, 0.99)
                b, a = (histogram(t, "spillway_sink_fdatasync_seconds", sink="file") for t in scraped)
                stages["fdatasync"] = bucket_quantile(b, a, 0.99)
                for stage in ("read", "verify", "blocking_pool", "decode", "ack"):
                    b, a = (histogram(t, "spillway_edge_stage_seconds", stage=stage) for t in scraped)
                    stages["edge " + stage] = bucket_quantile(b, a, 0.99)
                rows.append((lanes, round_no, peak, half, disk, stages))
                print(f"lanes {lanes} round {round_no}: max {peak['mb_per_sec']:.0f} MB/s; at {half['rate']:.1f}/s "
                      f"spillway {half['latency_ms']} non-2xx {half['non_2xx']}; disk p50 {disk['p50']:.2f} p99 {disk['p99']:.2f} max {disk['max']:.2f}; stage p99 <= {stages}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{DURATION} s runs, {CONNECTIONS} connections, ~{BATCH_BYTES // 1024} KiB signed NDJSON batches, fsync per batch; "
          "latency at half of the run's max rate, right after it; disk: bare write + fdatasync loop at that rate, same round")
    print(f"{'lanes':>5} {'round':>5} {'max MB/s':>8} {'rate/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'disk p50':>8} {'disk p99':>8} {'disk max':>8} {'p99/disk':>8}  stage p99 bucket bounds (ms, between scrapes)")
    for lanes, round_no, peak, half, disk, stages in rows:
        l = half["latency_ms"]
        st = " ".join(f"{k} {v:g}" for k, v in stages.items())
        print(f"{lanes:5} {round_no:5} {peak['mb_per_sec']:8.0f} {half['rate']:7.1f} {l['p50']:7.2f} {l['p99']:7.2f} {l['max']:7.2f} "
              f"{disk['p50']:8.2f} {disk['p99']:8.2f} {disk['max']:8.2f} {l['p99'] / disk['p99']:8.2f}  {st}")
    if os.environ.get("PLOT_DIR"):
        latency_plot(os.environ["PLOT_DIR"], rows)
    return 0
