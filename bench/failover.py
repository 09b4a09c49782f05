#!/usr/bin/env python3
"""Failover benchmark (issue 4): scenarios 1 (SIGSTOP of the primary), 2 (kill -9 of its
postmaster) and 5 (planned switchover, pgpivot-driven) for the profiles fast and default,
with a bounded writer through pgpivot that records every acknowledged write.

For each scenario and profile it starts a fresh two-node cluster (scripts/cluster.sh,
synchronous replication to the standby), pgpivot in front of it (failover_mode = promote,
transaction pooling), CLIENTS writer threads inserting (client, seq) every 20 ms, injects
the fault and measures, from the fault (CLOCK_MONOTONIC, the clock of the event log's
mono_ms):
  detection       the first event that put the primary down (state PRIMARY_DOWN), or for
                  a switchover the start of the pause (state PAUSING)
  first write     the first insert acknowledged by the new primary
  errors          client errors by SQLSTATE
  reconnects      clients whose connection broke and had to be opened again
  lost            acknowledged rows missing on the new primary afterwards
Each cell runs RUNS times (default 3, round-robin over the cells) and reports medians;
runs stop being started once RUN_BUDGET s (default 540) are used, inside the 10-minute bound.
Run by bench/failover.sh; see it for the knobs. Measures and reports, asserts nothing.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BIN = "/usr/lib/postgresql/15/bin"
CLIENTS = int(os.environ.get("CLIENTS", "4"))
RECOVERY_LIMIT = float(os.environ.get("RECOVERY_LIMIT", "30"))
# The probe settings each profile runs with (the profile only sets the thresholds).
PROBES = {
    "fast": "probe_interval = 0.2\nprobe_timeout = 0.5\n",
    "default": "",  # probe_interval = 1, probe_timeout = 1
}
PROBE_TEXT = {"fast": "probes every 0.2 s, 0.5 s deadline", "default": "probes every 1 s, 1 s deadline"}


def log(msg):
    print(f"bench-failover: {msg}", flush=True)


def sh(cmd, check=True):
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout.strip()


def psql(data, port, sql):
    return sh(f"runuser -u postgres -- {PG_BIN}/psql -X -A -t -h {data} -p {port} -U postgres "
              f"-d postgres -c \"{sql}\"")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return out


class Writers:
    def __init__(self, dsn, clients):
        self.dsn = dsn
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {c: [] for c in range(clients)}  # client -> [(seq, port, mono)]
        self.errors = {}
        self.reconnected = set()
        self.threads = [threading.Thread(target=self.run, args=(c,)) for c in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def run(self, client):
        deadline = time.monotonic() + 120  # bounded whatever happens
        conn = None
        seq = 0
        while not self.stop.is_set() and time.monotonic() < deadline and seq < 20000:
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    with self.lock:
                        self.reconnected.add(client)
                    time.sleep(0.1)
                try:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                except psycopg.Error as e:
                    with self.lock:
                        key = getattr(e, "sqlstate", None) or "connect"
                        self.errors[key] = self.errors.get(key, 0) + 1
                    conn = None
                    time.sleep(0.1)
                    continue
            seq += 1
            try:
                port = conn.execute("INSERT INTO acked VALUES (%s, %s) RETURNING inet_server_port()",
                                    (client, seq)).fetchone()[0]
                with self.lock:
                    self.acked[client].append((seq, str(port), time.monotonic()))
            except psycopg.Error as e:
                with self.lock:
                    key = e.sqlstate or "none"
                    self.errors[key] = self.errors.get(key, 0) + 1
            time.sleep(0.02)
        if conn is not None:
            conn.close()

    def wrote_on(self, port, n):
        with self.lock:
            return all(sum(1 for a in acks if a[1] == port) >= n for acks in self.acked.values())

    def first_on(self, port, after):
        with self.lock:
            times = [a[2] for acks in self.acked.values() for a in acks if a[1] == port and a[2] >= after]
        return min(times) if times else None


def run_one(build, scenario, profile):
    result = {"scenario": scenario, "profile": profile}
    work = tempfile.mkdtemp(prefix="pgpivot-fobench.")
    os.chmod(work, 0o755)
    pivot = None
    frozen = []
    try:
        sh(f"bash {ROOT}/scripts/cluster.sh start {work} >{work}/cluster.out 2>&1 || "
           f"(cat {work}/cluster.out {work}/*/server.log >&2; exit 1)")
        env = dict(line.split("=", 1) for line in open(f"{work}/cluster.env").read().split() if "=" in line)
        pdata, pport = env["CLUSTER_PRIMARY_DATA"], env["CLUSTER_PRIMARY_PORT"]
        sdata, sport = env["CLUSTER_STANDBY_DATA"], env["CLUSTER_STANDBY_PORT"]
        sh(f"source {ROOT}/tests/support/pg_common.sh && pg_create_test_roles {pdata} {pport}")
        psql(pdata, pport, "ALTER SYSTEM SET synchronous_commit = 'on'")
        psql(pdata, pport, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        psql(pdata, pport, "SELECT pg_reload_conf()")
        for _ in range(100):
            if psql(pdata, pport, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == "1":
                break
            time.sleep(0.1)
        port = free_port()
        events = f"{work}/events.jsonl"
        with open(f"{work}/userlist.txt", "w") as f:
            f.write('"pgpivot_scram" "secret"\n')
        with open(f"{work}/pgpivot.ini", "w") as f:
            f.write(f"""[pgpivot]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
admin_port = 0
auth_type = scram-sha-256
auth_file = {work}/userlist.txt
admin_users = pgpivot_scram
logfile = {work}/pgpivot.log
pool_mode = transaction
default_pool_size = 20
query_wait_timeout = 60
workers = 1

[databases]
appdb = cluster=main dbname=appdb

[cluster.main]
nodes = 127.0.0.1:{pport}, 127.0.0.1:{sport}
monitor_user = pgpivot_trust
monitor_dbname = postgres
failover_mode = promote
profile = {profile}
{PROBES[profile]}failover_cooldown = 0
heartbeat_create = on
failover_log = {events}
""")
        pivot = subprocess.Popen([f"{build}/src/pgpivot", f"{work}/pgpivot.ini"],
                                 stdout=subprocess.DEVNULL, stderr=open(f"{work}/pgpivot.err", "w"))
        dsn = f"host=127.0.0.1 port={port} dbname=appdb user=pgpivot_scram password=secret"
        for _ in range(100):
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as c:
                    c.execute("CREATE TABLE IF NOT EXISTS acked (client int, seq int)")
                break
            except psycopg.Error:
                time.sleep(0.1)
        else:
            raise RuntimeError("pgpivot did not accept connections")
        writers = Writers(dsn, CLIENTS)
        writers.start()
        t_end = time.monotonic() + 20
        while not writers.wrote_on(pport, 20) and time.monotonic() < t_end:
            time.sleep(0.05)
        time.sleep(0.5)

        fault = time.monotonic()
        if scenario == "sigstop":
            pid = int(open(f"{pdata}/postmaster.pid").readline())
            frozen = [pid] + children(pid)
            for p in frozen:
                os.kill(p, signal.SIGSTOP)
        elif scenario == "kill9":
            os.kill(int(open(f"{pdata}/postmaster.pid").readline()), signal.SIGKILL)
        else:
            admin = f"host=127.0.0.1 port={port} dbname=pgpivot user=pgpivot_scram password=secret"
            with psycopg.connect(admin, autocommit=True) as a:
                for _ in range(50):  # refused while pgpivot is still discovering
                    fault = time.monotonic()
                    try:
                        a.execute("SWITCHOVER main")
                        break
                    except psycopg.Error:
                        time.sleep(0.2)
        t_end = fault + RECOVERY_LIMIT
        while not writers.wrote_on(sport, 10) and time.monotonic() < t_end:
            time.sleep(0.05)
        writers.join()
        for p in frozen:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        frozen = []

        first = writers.first_on(sport, fault)
        result["first_write_ms"] = round((first - fault) * 1000) if first else None
        detect = None
        want = "PAUSING" if scenario == "switchover" else "PRIMARY_DOWN"
        for line in open(events):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "state_change" and e.get("to") == want and e["mono_ms"] >= fault * 1000 - 5:
                detect = max(0.0, e["mono_ms"] - fault * 1000)  # uv_now is cached per loop turn
                break
        result["detect_ms"] = round(detect) if detect is not None else None
        result["errors"] = dict(sorted(writers.errors.items()))
        result["reconnects"] = len(writers.reconnected)
        result["acked"] = sum(len(a) for a in writers.acked.values())
        with psycopg.connect(dsn, autocommit=True) as c:
            present = set(c.execute("SELECT client, seq FROM acked").fetchall())
            result["new_primary"] = str(c.execute("SELECT inet_server_port()").fetchone()[0])
        result["lost"] = sum(1 for cl, acks in writers.acked.items() for a in acks if (cl, a[0]) not in present)
        result["moved"] = result["new_primary"] == sport
        if scenario == "switchover":
            result["steps_ms"] = switchover_steps(events, fault)
    except Exception as e:  # reported in the table, the next run goes on
        result["failure"] = str(e).splitlines()[0][:200]
    finally:
        keep = os.environ.get("EVENTS_DIR")
        if keep:  # the event log and pgpivot's log of every run, to read the slow ones
            os.makedirs(keep, exist_ok=True)
            tag = f"{scenario}-{profile}-{time.strftime('%H%M%S')}"
            sh(f"cp {work}/events.jsonl {keep}/{tag}-events.jsonl; "
               f"cp {work}/pgpivot.log {keep}/{tag}-pgpivot.log", check=False)
            result["events"] = f"{keep}/{tag}-events.jsonl"
        for p in frozen:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if pivot is not None:
            pivot.terminate()
            try:
                pivot.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pivot.kill()
                pivot.wait()
        sh(f"bash {ROOT}/scripts/cluster.sh destroy {work} >/dev/null 2>&1; rm -rf {work}", check=False)
    return result


def switchover_steps(events, fault):
    """Where a switchover's time went, from its event log: ms spent in each state the run
    passed through (PAUSING = the drain, CATCHING_UP, FENCING, CATCHING_UP+ = after the
    fence, PROMOTING = pg_promote(), VERIFYING, RESUMING) and the time from the SWITCHOVER
    command to the first state change (the console and the monitor loop)."""
    steps = {}
    last = None
    for line in open(events):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if not str(e.get("failover_id") or "").startswith("s-"):
            continue
        if e.get("event") == "state_change":
            if last is None:
                steps["command"] = round(max(0.0, e["mono_ms"] - fault * 1000))
            else:
                key = last[0]
                while key in steps:
                    key += "+"
                steps[key] = e["mono_ms"] - last[1]
            last = (e["to"], e["mono_ms"])
            if e["to"] == "STEADY":
                break
    return steps


def fmt_ms(v):
    return "n/a" if v is None else f"{v / 1000:.2f} s"


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def cell(runs, key):
    """The median of a timing over the runs, with every run's value after it."""
    values = [r.get(key) for r in runs]
    each = " / ".join("n/a" if v is None else f"{v / 1000:.2f}" for v in values)
    return f"{fmt_ms(median(values))} ({each})"


def main():
    build = os.path.abspath(sys.argv[1])
    out_dir = sys.argv[2]
    scenarios = os.environ.get("SCENARIOS", "sigstop kill9 switchover").split()
    profiles = os.environ.get("PROFILES", "fast default").split()
    runs_per_cell = int(os.environ.get("RUNS", "3"))
    # Stop starting runs once this much of the 10-minute bound is used (a run takes ~20 s).
    budget = float(os.environ.get("RUN_BUDGET", "540"))
    started = time.monotonic()
    cells = []
    skipped = 0
    for run in range(runs_per_cell):  # round-robin: a cut-short bench still covers every cell
        for scenario in scenarios:
            for profile in profiles:
                if run == 0:
                    cells.append({"scenario": scenario, "profile": profile, "runs": []})
                if time.monotonic() - started > budget:
                    skipped += 1
                    continue
                log(f"{scenario} / {profile} run {run + 1} of {runs_per_cell} ...")
                r = run_one(build, scenario, profile)
                log(json.dumps(r))
                next(c for c in cells if c["scenario"] == scenario and c["profile"] == profile)[
                    "runs"].append(r)
    names = {"sigstop": "1 frozen primary (SIGSTOP)", "kill9": "2 kill -9 postmaster",
             "switchover": "5 planned switchover (SWITCHOVER)"}
    lines = [
        "# Failover benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {socket.gethostname()} "
        f"({os.cpu_count()} cores, shared), {time.monotonic() - started:.0f} s in all. "
        f"bench/failover.sh: a fresh primary + streaming standby (PostgreSQL 15, synchronous "
        f"replication, fsync off) per run; pgpivot failover_mode = promote, transaction pooling; "
        f"{CLIENTS} clients each inserting a row every 20 ms through pgpivot (autocommit) and "
        f"recording every acknowledged insert. {runs_per_cell} runs per cell: timings are the "
        f"median, each run's value in brackets (s); errors, reconnects, acked and lost are summed "
        f"over the runs. Profiles: fast = {PROBE_TEXT['fast']}; default = "
        f"{PROBE_TEXT['default']}."
        + (f" {skipped} run(s) not started: the time budget ({budget:.0f} s) was used up." if skipped else ""),
        "",
        "Detection: fault to the state PRIMARY_DOWN in the event log (switchover: to PAUSING). "
        "First write: fault to the first insert acknowledged by the new primary. Lost: "
        "acknowledged rows missing on the new primary.",
        "",
        "| scenario | profile | runs | fault → detection | fault → first write on new primary | "
        "client errors (SQLSTATE) | clients reconnected | acked writes | acked lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        ok = [r for r in c["runs"] if "failure" not in r]
        failed = [r for r in c["runs"] if "failure" in r]
        name = f"{names[c['scenario']]} | {c['profile']}"
        if not ok:
            why = failed[0]["failure"] if failed else "not run"
            lines.append(f"| {name} | 0 | FAILED: {why} | | | | | |")
            continue
        errors = {}
        for r in ok:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        errors_text = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none"
        not_moved = sum(1 for r in ok if not r["moved"])
        first = cell(ok, "first_write_ms") + (f", NOT moved in {not_moved}" if not_moved else "")
        runs = f"{len(ok)}" + (f" (+{len(failed)} failed: {failed[0]['failure']})" if failed else "")
        lines.append(f"| {name} | {runs} | {cell(ok, 'detect_ms')} | {first} | {errors_text} | "
                     f"{sum(r['reconnects'] for r in ok)} of {CLIENTS * len(ok)} | "
                     f"{sum(r['acked'] for r in ok)} | {sum(r['lost'] for r in ok)} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, time.strftime("failover-%Y%m%d-%H%M%S.md"))
    with open(path, "w") as f:
        f.write(text)
    print()
    print(text)
    log(f"written to {path}")


if __name__ == "__main__":
    main()
