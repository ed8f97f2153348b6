"""ONLY=scaling: maximum MB/s against connections for the discard ceiling, the file sink (plain
and gzip bodies) and the Kafka sink, and its plot."""
import os, shutil, statistics, sys, tempfile

from .common import BATCH_BYTES, DURATION, ROUNDS, ceiling, spillway
from .latency import draw_plot
from .kafka import consumed_acked, on_fresh_broker, spillway_to_kafka, unconsumed


def scaling_main():
    """ONLY=scaling: max-rate MB/s against connections (SCALING_CONNECTIONS) for the discard
    ceiling, Spillway with the file sink (plain bodies, then gzip ones) and, with a tansu binary,
    Spillway -> Kafka (a fresh broker per run); medians over ROUNDS; with PLOT_DIR also as an
    SVG."""
    conns_list = [int(x) for x in os.environ.get("SCALING_CONNECTIONS", "4 16 64").replace(",", " ").split()]
    tansu = os.environ.get("SPILLWAY_TANSU") or shutil.which("tansu")
    work = tempfile.mkdtemp(prefix="spillway-bench-")
    runs = {}  # (name, connections) -> [(summary, rss)]
    try:
        for round_no in range(1, ROUNDS + 1):
            for conns in conns_list:
                runs.setdefault(("ceiling", conns), []).append((ceiling(False, conns), None))
                peak, _h, rss = spillway(False, work, connections=conns, half_rate_run=False)
                runs.setdefault(("spillway file sink", conns), []).append((peak, rss))
                peak, _h, rss = spillway(True, work, connections=conns, half_rate_run=False)
                runs.setdefault(("spillway file sink, gzip", conns), []).append((peak, rss))
                if tansu:
                    run = on_fresh_broker(lambda port: spillway_to_kafka(work, port, conns))
                    runs.setdefault(("spillway -> kafka", conns), []).append(run)
                print(f"round {round_no}, {conns} connections: " + "; ".join(
                    f"{k[0]} {v[-1][0]['mb_per_sec']:.0f} MB/s" for k, v in runs.items() if k[1] == conns), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    names = sorted({k[0] for k in runs}, key=["ceiling", "spillway file sink", "spillway file sink, gzip", "spillway -> kafka"].index)
    print()
    print(f"throughput against connections: {DURATION} s max-rate runs, ~{BATCH_BYTES // 1024} KiB signed NDJSON batches, "
          f"medians of {ROUNDS} rounds; MB/s of bodies (inflated; 'of ceiling': of the plain ceiling), peak RSS the largest")
    print(f"{'run':24} {'conns':>5} {'MB/s':>8} {'records/s':>10} {'of ceiling':>10} {'p99 ms':>8} {'RSS MiB':>8} {'non-2xx':8}  consumed/acked")
    missing = []
    series = []
    for name in names:
        points = []
        for conns in conns_list:
            rs = runs[(name, conns)]
            mb = med(r[0]["mb_per_sec"] for r in rs)
            ceil = med(r[0]["mb_per_sec"] for r in runs[("ceiling", conns)])
            rss = [r[1] for r in rs if r[1]]
            non_2xx = {}
            for r in rs:
                for status, n in r[0]["non_2xx"].items():
                    non_2xx[status] = non_2xx.get(status, 0) + n
            checks = [r[0]["topic_check"] for r in rs if "topic_check" in r[0]]
            missing += unconsumed(f"{name}, {conns} connections", checks)
            print(f"{name:24} {conns:5} {mb:8.1f} {med(r[0]['records_per_sec'] for r in rs):10.0f} {mb / ceil:10.1%} "
                  f"{med(r[0]['latency_ms']['p99'] for r in rs):8.1f} {(f'{max(rss):.0f}' if rss else '-'):>8} {str(non_2xx):8}  "
                  f"{consumed_acked(checks)}")
            points.append([conns, mb])
        series.append({"name": name, "points": points})
    if os.environ.get("PLOT_DIR"):
        title = f"max-rate throughput against connections ({BATCH_BYTES // 1024} KiB signed batches, {DURATION} s runs)"
        draw_plot(os.environ["PLOT_DIR"], "throughput", {"kind": "xy", "title": title, "x": "loadgen connections",
                                                          "y": "MB/s (uncompressed bodies)", "series": series},
                  "throughput-connections.svg")
    for line in missing:
        print(line)
    return 1 if missing else 0
