#!/usr/bin/python3
"""psycopg 3 through pgpivot in transaction mode: psycopg prepares a query after it has run
it prepare_threshold (5) times, and sends DEALLOCATE itself when its own cache overflows and
DEALLOCATE ALL after a ROLLBACK. Several connections share a small pool; every result is
checked. Usage: psycopg_prepared.py PORT. Exit status 0 when everything was right."""
import sys

import psycopg

port = int(sys.argv[1])
conninfo = f"host=127.0.0.1 port={port} dbname=appdb user=pgpivot_scram password=secret"
QUERIES = [
    ("SELECT %s::int + %s::int", lambda a, b: a + b),
    ("SELECT %s::int * %s::int", lambda a, b: a * b),
    ("SELECT %s::int - %s::int", lambda a, b: a - b),
    ("SELECT (%s::int + 1) * (%s::int + 2)", lambda a, b: (a + 1) * (b + 2)),
]
failures = []


def check(conn_index, what, got, want):
    if got != want:
        failures.append(f"connection {conn_index}: {what}: got {got!r}, want {want!r}")


conns = [psycopg.connect(conninfo, autocommit=True) for _ in range(6)]
conns[0].prepared_max = 2  # psycopg deallocates its own statements as it goes
checked = 0


def run_round(round_no):
    global checked
    for c, conn in enumerate(conns):
        queries = list(enumerate(QUERIES))
        if c == 0:
            # Two queries at a time, six rounds each: psycopg prepares them, then
            # deallocates them to prepare the next two.
            queries = queries[:2] if round_no // 6 % 2 == 0 else queries[2:]
        for q, (sql, want) in queries:
            a, b = round_no * 3 + c, q + 2
            row = conn.execute(sql, (a, b)).fetchone()
            check(c, f"round {round_no} query {q}", row[0], want(a, b))
            checked += 1


for round_no in range(12):
    # Some rounds run inside another connection's transaction, which holds a server.
    if round_no % 4 == 1:
        with conns[5].transaction():
            conns[5].execute("SELECT 1")
            run_round(round_no)
    else:
        run_round(round_no)

prepared = [len(conn._prepared._names) for conn in conns]
if not all(prepared):
    failures.append(f"psycopg did not prepare on every connection: {prepared}")

# A rolled-back transaction makes psycopg send DEALLOCATE ALL before its next query; the
# statements are prepared again afterwards.
for c, conn in enumerate(conns):
    conn.autocommit = False
    conn.execute("SELECT 1")
    conn.rollback()
    conn.autocommit = True
for round_no in range(12, 20):
    run_round(round_no)

# A DEALLOCATE ALL of its own: psycopg must be told (as with PostgreSQL itself).
for c, conn in enumerate(conns):
    cur = conn.execute("DEALLOCATE ALL")
    check(c, "DEALLOCATE ALL status", cur.statusmessage, "DEALLOCATE ALL")
    conn._prepared.clear()
    list(conn._prepared.get_maintenance_commands())  # its DEALLOCATE ALL: already done
for round_no in range(20, 28):
    run_round(round_no)
prepared = [len(conn._prepared._names) for conn in conns[1:]]
if not all(prepared):
    failures.append(f"psycopg did not prepare again after DEALLOCATE ALL: {prepared}")

for conn in conns:
    conn.close()
print(f"checked {checked} results, {len(failures)} wrong")
for failure in failures[:20]:
    print(failure)
sys.exit(1 if failures else 0)
