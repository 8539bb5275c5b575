"""The shop's worker: no port; takes job ids from the Redis list JOB_QUEUE (BRPOP) and writes
each result to PostgreSQL (jobs.status = 'done', result = sha256 and word count of the
payload, worker = this container's host name). Reconnects with a pause when either is down.
"""

import hashlib
import json
import os
import signal
import socket
import sys
import time

import psycopg
import redis
import redis.exceptions

from common import JOB_QUEUE, database_url, redis_url, where

POP_TIMEOUT_S = 2
RETRY_S = 1.0
stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


def process(conn, job_id, me):
    rows = conn.execute("SELECT payload FROM jobs WHERE id = %s", (job_id,)).fetchall()
    if not rows:
        print(f"worker: job {job_id} unknown, dropped", flush=True)
        return
    payload = rows[0][0]
    result = json.dumps({"sha256": hashlib.sha256(payload.encode()).hexdigest(),
                         "words": len(payload.split())})
    conn.execute("UPDATE jobs SET status = 'done', result = %s, worker = %s, done_at = now() "
                 "WHERE id = %s", (result, me, job_id))
    print(f"worker: job {job_id} done", flush=True)


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    me = socket.gethostname()
    queue = redis.Redis.from_url(redis_url(), socket_timeout=POP_TIMEOUT_S + 3,
                                 socket_connect_timeout=2)
    print(f"worker: queue {JOB_QUEUE!r} at {where(redis_url())}, "
          f"postgres at {where(database_url())}", flush=True)
    conn = None
    while not stopping:
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(database_url(), autocommit=True, connect_timeout=2)
            item = queue.brpop(JOB_QUEUE, timeout=POP_TIMEOUT_S)
            if item is None:
                continue
            job = json.loads(item[1])
            process(conn, str(job["id"]), me)
        except (psycopg.Error, redis.exceptions.RedisError, OSError) as exc:
            print(f"worker: {type(exc).__name__}; retrying", flush=True)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(RETRY_S)
        except (ValueError, KeyError, TypeError):
            print("worker: malformed job dropped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
