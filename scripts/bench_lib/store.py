"""The registered-drain comparison: the file store against the shared PostgreSQL store (a
throwaway cluster)."""
import glob, json, os, shutil, subprocess, sys, tempfile

from .common import BIN, SECRET, free_port, spillway


STORE_KEY = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="  # 32 bytes of 7: a bench key, nothing else
PATH_KEY = "0123456789abcdef0123456789abcdef"


def postgres_bin():
    given = os.environ.get("SPILLWAY_POSTGRES_BIN")
    if given:
        return given
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    return os.path.dirname(found[-1]) if found else None


def write_registry(data):
    """The registered drain the store comparison delivers to, in a data dir's drains.json."""
    drain = {"id": "drn_bench", "pathKey": PATH_KEY, "secret": SECRET, "teamId": None, "kind": "self-served", "createdAtMs": 1}
    with open(os.path.join(data, "drains.json"), "w") as f:
        json.dump({"version": 1, "drains": [drain]}, f)
    os.chmod(os.path.join(data, "drains.json"), 0o600)


class Postgres:
    """A throwaway cluster on a free loopback port, run as an unprivileged user (initdb refuses root)."""

    def __init__(self, work):
        self.bin = postgres_bin()
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=work)
        self.port = free_port()
        user = "postgres" if os.geteuid() == 0 else None
        self.prefix = ["runuser", "-u", user, "--"] if user else []
        if user:
            shutil.chown(self.dir, user)
            os.chmod(work, 0o755)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write("bench\n")
        if user:
            shutil.chown(pwfile, user)
        data = os.path.join(self.dir, "data")
        subprocess.run(self.prefix + [os.path.join(self.bin, "initdb"), "-D", data, "-U", "spillway", "--pwfile", pwfile,
                                      "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        subprocess.run(self.prefix + [os.path.join(self.bin, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(self.dir, "log"), "-o", opts, "start"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.data = data
        self.url = f"postgres://spillway:bench@127.0.0.1:{self.port}/postgres"

    def stop(self):
        subprocess.run(self.prefix + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def store_comparison(work, rows):
    """One round: the registered drain from the file store, then from PostgreSQL."""
    path = f"/vercel/logs/{PATH_KEY}"
    peak, half, rss = spillway(False, work, path=path, prepare=write_registry)
    rows.setdefault("registered drain, file store", []).append((peak, half, rss, 1.0))
    pg = Postgres(work)
    try:
        env = {"SPILLWAY_DATABASE_URL": pg.url, "SPILLWAY_STORE_KEY": STORE_KEY}
        source = tempfile.mkdtemp(dir=work)
        write_registry(source)
        subprocess.run([os.path.join(BIN, "spillway"), "store", "import", "--from", source], env={**os.environ, **env},
                       check=True, stdout=subprocess.DEVNULL)
        pg_peak, pg_half, pg_rss = spillway(False, work, extra_env=env, path=path)
        rows.setdefault("registered drain, PostgreSQL store", []).append(
            (pg_peak, pg_half, pg_rss, pg_peak["mb_per_sec"] / peak["mb_per_sec"]))
        print(f"store comparison: file {peak['mb_per_sec']:.1f} MB/s, postgres {pg_peak['mb_per_sec']:.1f} MB/s", file=sys.stderr)
    finally:
        pg.stop()
