"""The Kafka comparison: tansu, the bare rdkafka producer (with and without headers), Spillway ->
Kafka per connection count, the topic read back by topic-check, and the stalled-broker run."""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

from .common import (
    BATCH_BYTES, BIN, CONNECTIONS, DURATION, ROUNDS, SECRET, free_port, run_measured, settle, spillway, start, status_mib, stop, wait_http,
)


def start_tansu():
    tansu = os.environ.get("SPILLWAY_TANSU") or shutil.which("tansu")
    if not tansu:
        return None, None
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = start([tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/"], {"RUST_LOG": "warn"})
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return broker, port
        except OSError:
            if time.time() > deadline:
                raise SystemExit("tansu did not start")
            time.sleep(0.1)


def stalled(work):
    """Spillway -> Kafka at max rate; after 2 s the broker is frozen (SIGSTOP). Samples the
    receiver's RSS: it must level off at the configured bounds while clients get 503s. Then the
    broker is thawed and the topic read back: every record answered 2xx, before or during the
    freeze, must be in it (the summary's `topic_check`)."""
    broker, port = start_tansu()
    if not broker:
        return None
    try:
        config = os.path.join(work, "stall.toml")
        with open(config, "w") as f:
            f.write("[sinks.file]\nenabled = false\n[sinks.kafka]\nbrokers = \"127.0.0.1:%d\"\n" % port)
        rport = free_port()
        data = tempfile.mkdtemp(dir=work)
        env = {"SPILLWAY_LISTEN": f"127.0.0.1:{rport}", "SPILLWAY_DATA_DIR": data, "SPILLWAY_DRAIN_SECRET": SECRET, "RUST_LOG": "error"}
        proc = start([os.path.join(BIN, "spillway"), "serve", "--config", config], env)
        if not wait_http(f"http://127.0.0.1:{rport}/readyz", 60):
            stop(proc)
            raise SystemExit("spillway did not become ready")
        settle()
        acked = os.path.join(work, "stall-acked.json")
        gen = subprocess.Popen([os.path.join(BIN, "loadgen"), "--url", f"http://127.0.0.1:{rport}/vercel/logs", "--secret", SECRET,
                                "--connections", str(CONNECTIONS), "--duration-secs", str(DURATION), "--batch-bytes", str(BATCH_BYTES), "--json",
                                "--acked-out", acked],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        samples = []
        t0 = time.time()
        frozen = False
        while gen.poll() is None:
            if not frozen and time.time() - t0 > 2:
                broker.send_signal(signal.SIGSTOP)
                frozen = True
            samples.append((round(time.time() - t0, 1), round(status_mib(proc.pid, "VmRSS"))))
            time.sleep(0.5)
        summary = json.loads(gen.stdout.read())
        broker.send_signal(signal.SIGCONT)
        stop(proc)
        summary["topic_check"] = topic_check(port, "vercel-logs", acked)
        shutil.rmtree(data, ignore_errors=True)
        return samples, summary
    finally:
        broker.send_signal(signal.SIGCONT)
        stop(broker)


KAFKA_CONNECTIONS = [int(x) for x in os.environ.get("KAFKA_CONNECTIONS", "16 64").replace(",", " ").split()]


def bare_producer(port, records, headers):
    """The bare rdkafka producer's JSON summary, with its own CPU seconds as `loadgen_cpu_secs`
    (it is its own load generator)."""
    cmd = [os.path.join(BIN, "bare-producer"), "--brokers", f"127.0.0.1:{port}", "--topic", "bench-bare",
           "--records", str(records), "--json"] + ([] if headers else ["--no-headers"])
    out, cpu = run_measured(cmd)
    summary = json.loads(out)
    summary["loadgen_cpu_secs"] = cpu
    return summary


def topic_check(port, topic, acked):
    """Reads `topic` back (Spillway's logs go to its configured topic; no routes are set) and
    checks that every record loadgen saw acknowledged (its --acked-out digests) is in it:
    topic-check's JSON summary, `missing` counting acknowledged records not found."""
    cmd = [os.path.join(BIN, "topic-check"), "--brokers", f"127.0.0.1:{port}", "--topic", topic, "--acked", acked]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    try:
        return json.loads(out)
    except ValueError:
        return {"missing": None, "error": "topic-check failed", "acked_records": None}


def spillway_to_kafka(work, port, connections):
    """Spillway -> Kafka at max rate with `connections` loadgen connections, files off, into the
    broker at `port`; then the topic read back. Returns (loadgen's summary with its `topic_check`,
    peak RSS)."""
    config = os.path.join(work, "kafka.toml")
    with open(config, "w") as f:
        f.write("[sinks.file]\nenabled = false\n[sinks.kafka]\nbrokers = \"127.0.0.1:%d\"\ntopic = \"bench-spillway\"\n" % port)
    acked = os.path.join(work, "acked.json")
    peak, _half, rss = spillway(False, work, config=config, connections=connections, half_rate_run=False,
                                load=("--acked-out", acked))
    peak["topic_check"] = topic_check(port, "bench-spillway", acked)
    return peak, rss


def on_fresh_broker(run):
    """`run(port)` against a tansu broker started for it alone."""
    broker, port = start_tansu()
    try:
        return run(port)
    finally:
        stop(broker)


def unconsumed(label, checks):
    """A MISSING line for each of topic-check's `checks` that did not find every acknowledged
    record (or could not read the topic)."""
    return [f"MISSING: acknowledged records not found in the topic: {label}: {c}" for c in checks if c.get("missing") != 0]


def kafka(work):
    """One round of Spillway -> Kafka at max rate next to the bare producer, for each of
    KAFKA_CONNECTIONS: the bare producer without headers (the limit), with Spillway's four
    headers, and Spillway at that many connections. Returns {connections: {row: (summary, rss)}}.
    By default each run gets a fresh broker (tansu keeps everything in memory, so a broker
    holding an earlier run's data handicaps the next); KAFKA_BROKER=shared runs the three on one
    broker per connection count, the bare producer first (BARE_RECORDS records)."""
    shared = os.environ.get("KAFKA_BROKER") == "shared"

    if not (os.environ.get("SPILLWAY_TANSU") or shutil.which("tansu")):
        return None
    out = {}
    for connections in KAFKA_CONNECTIONS:
        rows = out[connections] = {}
        if shared:
            broker, port = start_tansu()
            try:
                records = int(os.environ.get("BARE_RECORDS", "1500000"))
                rows["bare"] = (bare_producer(port, records, False), None)
                rows["bare_headers"] = (bare_producer(port, records, True), None)
                rows["spillway"] = spillway_to_kafka(work, port, connections)
            finally:
                stop(broker)
        else:
            rows["spillway"] = on_fresh_broker(lambda port: spillway_to_kafka(work, port, connections))
            # As many records as Spillway moved, so both sides pay the same broker growth.
            records = max(int(rows["spillway"][0]["accepted_records"]), 20000)
            rows["bare"] = (on_fresh_broker(lambda port: bare_producer(port, records, False)), None)
            rows["bare_headers"] = (on_fresh_broker(lambda port: bare_producer(port, records, True)), None)
        print(f"kafka, {connections} connections: " + "; ".join(f"{k} {v[0]['records_per_sec']:.0f} records/s"
                                                                for k, v in rows.items()), file=sys.stderr)
    return out


def kafka_table(kafka_rounds):
    """The Kafka comparison: per connection count, medians over rounds of records/s and their
    ratio to the bare producer without headers in the same round."""
    med = statistics.median
    print()
    print(f"kafka: {DURATION} s Spillway runs, ~{BATCH_BYTES // 1024} KiB signed NDJSON batches, files off, lz4, idempotent, "
          f"acks=all, one local tansu broker ({os.environ.get('KAFKA_BROKER', 'fresh')}); medians of {len(kafka_rounds)} rounds")
    print(f"{'kafka run':44} {'conns':>5} {'records/s':>11} {'ratio':>6} {'per round':>16} {'p99 ms':>7} {'RSS MiB':>8} "
          f"{'gen CPU s':>9} {'gen cores':>9}  consumed/acked")
    missing = []
    names = (("bare", "bare rdkafka producer, no headers (limit)"), ("bare_headers", "bare rdkafka producer, 4 headers"),
             ("spillway", "spillway -> kafka (HTTP, verify, parse)"))
    for connections in KAFKA_CONNECTIONS:
        for key, label in names:
            runs = [r[connections][key] for r in kafka_rounds]
            ratios = [r[connections][key][0]["records_per_sec"] / r[connections]["bare"][0]["records_per_sec"] for r in kafka_rounds]
            rss = [x[1] for x in runs if x[1]]
            p99 = f"{med(x[0]['latency_ms']['p99'] for x in runs):.1f}" if "latency_ms" in runs[0][0] else "-"
            conns = connections if key == "spillway" else "-"
            cpu = med(x[0]["loadgen_cpu_secs"] for x in runs)
            cores = med(x[0]["loadgen_cpu_secs"] / x[0]["seconds"] for x in runs)
            checks = [x[0]["topic_check"] for x in runs if "topic_check" in x[0]]
            print(f"{label:44} {conns:>5} {med(x[0]['records_per_sec'] for x in runs):11.0f} {med(ratios):6.2f} "
                  f"{' '.join(f'{x:.2f}' for x in ratios):>16} {p99:>7} {(f'{max(rss):.0f}' if rss else '-'):>8} {cpu:9.1f} "
                  f"{cores:9.2f}  {consumed_acked(checks)}")
            for i, c in enumerate(checks):
                missing += unconsumed(f"{connections} connections, round {i + 1}", [c])
    print("(ratio: records/s over the bare producer without headers in the same round; p99: acknowledgement latency at max rate;")
    print(" gen CPU s / cores: CPU seconds the load generator took (loadgen for Spillway, the bare producer itself for its rows),")
    print(" and that over the run's seconds; the load generator shares the machine's cores with the receiver and the broker;")
    print(" consumed/acked: the topic read back from the beginning after each Spillway run, every record of every batch")
    print(" answered 2xx looked for by its bytes' digest (topic-check); extra: records of batches not answered 2xx, at least once)")
    for line in missing:
        print(line)
    return missing


def consumed_acked(checks):
    """The consumed/acked cell: acknowledged records over the rounds and whether all were found."""
    if not checks:
        return "-"
    if any(c.get("missing") is None for c in checks):
        return "CHECK FAILED"
    acked = sum(c["acked_records"] for c in checks)
    missing = sum(c["missing"] for c in checks)
    extra = sum(c["consumed"] for c in checks) - acked + missing
    return f"acked {acked:,}, " + (f"MISSING {missing:,}" if missing else f"all consumed (+{extra:,} extra)")


def kafka_main():
    """ONLY=kafka: only the Kafka comparison."""
    work = tempfile.mkdtemp(prefix="spillway-bench-")
    rounds = []
    try:
        for round_no in range(1, ROUNDS + 1):
            print(f"round {round_no} of {ROUNDS}", file=sys.stderr)
            k = kafka(work)
            if not k:
                raise SystemExit("ONLY=kafka needs a tansu binary: set SPILLWAY_TANSU")
            rounds.append(k)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if kafka_table(rounds) else 0
