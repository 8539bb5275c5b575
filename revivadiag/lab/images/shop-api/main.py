"""The shop's API on port 8000 (aiohttp), using PostgreSQL and Redis.

  GET  /healthz, /health  PostgreSQL (SELECT 1) and Redis (PING), each with its latency;
                          200 when both answer, else 503
  GET  /items             the latest items from PostgreSQL and Redis's ``items:created`` count
  POST /items             JSON {"name": ...}: INSERT into PostgreSQL, INCR in Redis; 201
  POST /jobs              JSON {"payload": ...}: a jobs row (queued) in PostgreSQL, the id
                          pushed on the Redis list JOB_QUEUE for the worker; 202
  GET  /jobs/{id}         the job's status and result (written by the worker); 404 if unknown
  ANY  /echo              the request line and headers received (Authorization, Cookie masked)

Behind the proxy these are under /api/ (the proxy strips the prefix).

A restarted dependency (stop-start on its volume) is ridden out: a health check, and a GET
whose handler meets a PostgreSQL or Redis error, try again with backoff (50 ms doubling to
400 ms) for at most DEPENDENCY_RETRY_S seconds (default 1.8), then answer 503.
On SIGTERM the listener closes at once and requests in flight get SHUTDOWN_LAMEDUCK_S seconds
(default 1.0) before the process exits.
"""

import asyncio
import itertools
import json
import os
import time
import uuid

import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web

from common import JOB_QUEUE, database_url, injected_delay_s, redis_url, where

CHECK_TIMEOUT_S = 2.0
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 0.4


def seconds_from_env(name, default):
    try:
        return min(max(float(os.environ.get(name, str(default))), 0.0), 10.0)
    except ValueError:
        return default


def pauses(budget_s):
    """The waits before each try again of a failed dependency call: 50 ms doubling to 400 ms,
    for as long as ``budget_s`` (counted from now) leaves room for one more try."""
    end = time.monotonic() + budget_s
    pause = RETRY_FIRST_S
    while time.monotonic() + pause < end:
        yield pause
        pause = min(pause * 2, RETRY_MAX_S)


def retry_budget_s(request=None):
    """DEPENDENCY_RETRY_S; 0 for a request that is not safe to repeat (not GET/HEAD)."""
    if request is not None and request.method not in ("GET", "HEAD"):
        return 0.0
    return seconds_from_env("DEPENDENCY_RETRY_S", 1.8)


MASKED = ("authorization", "cookie")


class Database:
    """One lazily (re)opened async connection, used under a lock."""

    def __init__(self, url):
        self.url = url
        self.conn = None
        self.lock = asyncio.Lock()

    async def fetch(self, query, params=()):
        async with self.lock:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=2)
                cur = await self.conn.execute(query, params)
                return await cur.fetchall() if cur.description else []
            except psycopg.Error:
                if self.conn is not None:
                    await self.conn.close()
                self.conn = None
                raise


async def timed(factory):
    started = time.perf_counter()
    out = {"status": "ok"}
    for pause in itertools.chain([0.0], pauses(retry_budget_s())):
        await asyncio.sleep(pause)
        try:
            await asyncio.wait_for(factory(), CHECK_TIMEOUT_S)
            out = {"status": "ok"}
            break
        except asyncio.TimeoutError:
            out = {"status": "down", "error": "timeout"}
        except Exception as exc:  # a dependency's failure is a health result, not a crash
            out = {"status": "down", "error": type(exc).__name__}
    out["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return out


async def health(request):
    app = request.app
    db = await timed(lambda: app["db"].fetch("SELECT 1"))
    cache = await timed(lambda: app["redis"].ping())
    ok = db["status"] == cache["status"] == "ok"
    return web.json_response(
        {"status": "ok" if ok else "degraded", "checks": {"postgres": db, "redis": cache}},
        status=200 if ok else 503)


async def body(request):
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                 content_type="application/json")
    return data


async def list_items(request):
    rows = await request.app["db"].fetch(
        "SELECT id, name, created_at FROM items ORDER BY id DESC LIMIT 50")
    created = await request.app["redis"].get("items:created")
    return web.json_response({
        "items": [{"id": i, "name": n, "created_at": c.isoformat()} for i, n, c in rows],
        "created": int(created or 0)})


async def create_item(request):
    name = (await body(request)).get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        return web.json_response({"error": "name: a string of 1..200 characters"}, status=400)
    rows = await request.app["db"].fetch(
        "INSERT INTO items (name) VALUES (%s) RETURNING id, created_at", (name,))
    created = await request.app["redis"].incr("items:created")
    await request.app["redis"].set("items:last", name)
    item_id, at = rows[0]
    return web.json_response({"id": item_id, "name": name, "created_at": at.isoformat(),
                              "created": created}, status=201)


async def create_job(request):
    payload = (await body(request)).get("payload")
    if not isinstance(payload, str) or len(payload) > 10_000:
        return web.json_response({"error": "payload: a string up to 10000 characters"},
                                 status=400)
    job_id = str(uuid.uuid4())
    await request.app["db"].fetch(
        "INSERT INTO jobs (id, payload) VALUES (%s, %s)", (job_id, payload))
    await request.app["redis"].lpush(JOB_QUEUE, json.dumps({"id": job_id}))
    return web.json_response({"id": job_id, "status": "queued"}, status=202)


async def get_job(request):
    try:
        job_id = str(uuid.UUID(request.match_info["job_id"]))
    except ValueError:
        return web.json_response({"error": "not a job id"}, status=404)
    rows = await request.app["db"].fetch(
        "SELECT status, result, worker FROM jobs WHERE id = %s", (job_id,))
    if not rows:
        return web.json_response({"error": "no such job"}, status=404)
    status, result, worker = rows[0]
    return web.json_response({"id": job_id, "status": status, "result": result,
                              "worker": worker})


async def echo(request):
    headers = {}
    for key, value in request.headers.items():
        shown = "***" if key.lower() in MASKED else value
        headers[key] = f"{headers[key]}, {shown}" if key in headers else shown
    return web.json_response({
        "method": request.method, "path": request.path, "remote": request.remote,
        "http_version": f"{request.version.major}.{request.version.minor}",
        "headers": headers})



@web.middleware
async def injected_delay(request, handler):
    await asyncio.sleep(injected_delay_s())
    return await handler(request)

@web.middleware
async def dependency_errors(request, handler):
    """A dependency's failure is a 503 naming it; a GET or HEAD is tried again with backoff
    within DEPENDENCY_RETRY_S first."""
    failed = ""
    for pause in itertools.chain([0.0], pauses(retry_budget_s(request))):
        await asyncio.sleep(pause)
        try:
            return await handler(request)
        except (psycopg.Error, redis.exceptions.RedisError) as exc:
            failed = "postgres" if isinstance(exc, psycopg.Error) else "redis"
    return web.json_response({"error": f"dependency unavailable: {failed}"}, status=503)


async def lameduck(app):
    """On SIGTERM (the listener is closed already): linger while requests finish."""
    await asyncio.sleep(seconds_from_env("SHUTDOWN_LAMEDUCK_S", 1.0))


async def close(app):
    await app["redis"].close()
    if app["db"].conn is not None:
        await app["db"].conn.close()


def make_app():
    app = web.Application(middlewares=[injected_delay, dependency_errors])
    app["db"] = Database(database_url())
    app["redis"] = aioredis.from_url(redis_url(), socket_timeout=CHECK_TIMEOUT_S,
                                     socket_connect_timeout=CHECK_TIMEOUT_S)
    app.on_shutdown.append(lameduck)
    app.on_cleanup.append(close)
    app.router.add_get("/healthz", health)
    app.router.add_get("/health", health)
    app.router.add_get("/items", list_items)
    app.router.add_post("/items", create_item)
    app.router.add_post("/jobs", create_job)
    app.router.add_get("/jobs/{job_id}", get_job)
    app.router.add_route("*", "/echo", echo)
    print(f"api: postgres at {where(database_url())}, redis at {where(redis_url())}",
          flush=True)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="0.0.0.0", port=int(os.environ.get("PORT", "8000")),
                access_log_format='%a "%r" %s %b %Tfs', keepalive_timeout=75)
