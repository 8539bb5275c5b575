"""The lab's backend on port 3011 (aiohttp, psycopg 3 and redis-py from Debian).

Routes:
  GET  /health, /api/health   PostgreSQL and Redis checked, each reported with its latency;
                              200 when both answer, 503 otherwise (degraded: one is down,
                              unhealthy: both are down)
  POST /api/auth/login        JSON {email, password}; PBKDF2 hash checked against the users
                              table; a signed session token is stored in Redis, set as the
                              ``session`` cookie and returned
  POST /api/auth/logout       drops the session
  GET  /api/user/profile      needs the session cookie or ``Authorization: Bearer``; else 401
  ANY  /api/debug/echo        the request line and headers received, as JSON (values of
                              Authorization and Cookie are masked)
  GET  /api/debug/delay?ms=N  answers after N ms (0..5000), else 400
  GET  /ws                    WebSocket echo (text and binary)

Configuration comes from the environment: DATABASE_URL (or DATABASE_INTERNAL_HOST, _PORT,
_NAME, _USER, _PASSWORD), REDIS_INTERNAL_URL, REDIS_PASSWORD, JWT_SECRET, APP_ENV.
No secret value is ever logged or returned.

Riding out a restarted dependency (a stateful service stopped and started on its volume):
a health check, and a GET whose handler meets a database or Redis error, try again with
backoff (50 ms doubling to 400 ms) for at most DEPENDENCY_RETRY_S seconds (default 1.8,
under a client's usual 2 s), then answer 503 naming the dependency.

SIGUSR1 (the image's label ``io.revivadiag.ws-close-signal``): every WebSocket is closed
with 1001 (going away) and the server goes on; its clients reconnect (through a new proxy
when the one in between is being replaced).

Stopping (SIGTERM, the image's stop signal): the listening socket closes at once (new
connections are refused, so a proxy moves them to another server), every WebSocket is closed
with 1001 (going away) so its client reconnects, the process lingers SHUTDOWN_LAMEDUCK_S
seconds (default 1.0) while requests in flight finish, then exits.
"""

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import signal
import time
import weakref

import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import WSCloseCode, WSMsgType, web

SESSION_TTL_S = 3600
MAX_DELAY_MS = 5000
CHECK_TIMEOUT_S = 2.0
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 0.4
MASKED_HEADERS = ("authorization", "cookie")


def database_url(env):
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    return "postgresql://{u}:{p}@{h}:{port}/{n}".format(
        u=env.get("DATABASE_USER", "revivatech"), p=env.get("DATABASE_PASSWORD", ""),
        h=env.get("DATABASE_INTERNAL_HOST", "database"), port=env.get("DATABASE_PORT", "5432"),
        n=env.get("DATABASE_NAME", "revivatech"),
    )


def verify_password(password, stored):
    """``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``."""
    try:
        algo, iterations, salt, expected = stored.split("$")
    except ValueError:
        return False
    if algo != "pbkdf2_sha256":
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(got.hex(), expected)


class Sessions:
    """Session tokens ``<random>.<hmac>`` signed with JWT_SECRET and kept in Redis."""

    def __init__(self, redis_client, secret):
        self.redis = redis_client
        self.secret = secret.encode()

    def _sign(self, raw):
        return hmac.new(self.secret, raw.encode(), hashlib.sha256).hexdigest()[:32]

    async def create(self, user_id):
        raw = secrets.token_urlsafe(24)
        token = f"{raw}.{self._sign(raw)}"
        await self.redis.set(f"session:{raw}", str(user_id), ex=SESSION_TTL_S)
        return token

    async def user_id(self, token):
        raw, _, sig = (token or "").partition(".")
        if not raw or not hmac.compare_digest(sig, self._sign(raw)):
            return None
        value = await self.redis.get(f"session:{raw}")
        return int(value) if value else None

    async def drop(self, token):
        raw, _, _ = (token or "").partition(".")
        if raw:
            await self.redis.delete(f"session:{raw}")


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
                        self.url, autocommit=True, connect_timeout=2
                    )
                cur = await self.conn.execute(query, params)
                return await cur.fetchall()
            except psycopg.Error:
                if self.conn is not None:
                    await self.conn.close()
                self.conn = None
                raise


def retry_budget_s():
    try:
        return min(max(float(os.environ.get("DEPENDENCY_RETRY_S", "1.8")), 0.0), 10.0)
    except ValueError:
        return 1.8


async def with_retry(coro_factory, budget_s, timeout_s=CHECK_TIMEOUT_S):
    """Await ``coro_factory()``; on a failure try again with backoff while ``budget_s``
    allows (each try bounded by what is left, at least 0.2 s); the last failure is raised."""
    end = time.monotonic() + budget_s
    backoff = RETRY_FIRST_S
    while True:
        left = max(end - time.monotonic(), 0.2)
        try:
            return await asyncio.wait_for(coro_factory(), min(left, timeout_s))
        except (asyncio.TimeoutError, psycopg.Error, redis.exceptions.RedisError, OSError):
            if time.monotonic() + backoff >= end:
                raise
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, RETRY_MAX_S)


async def timed_check(coro_factory):
    started = time.perf_counter()
    try:
        await with_retry(coro_factory, retry_budget_s())
        status, error = "healthy", None
    except asyncio.TimeoutError:
        status, error = "unhealthy", "timeout"
    except Exception as exc:  # any failure of a dependency is a health result, not a crash
        status, error = "unhealthy", type(exc).__name__
    result = {"status": status, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    if error:
        result["error"] = error
    return result


async def health(request):
    app = request.app
    database = await timed_check(lambda: app["db"].fetch("SELECT 1"))
    cache = await timed_check(lambda: app["redis"].ping())
    down = [c for c in (database, cache) if c["status"] != "healthy"]
    status = "healthy" if not down else ("degraded" if len(down) == 1 else "unhealthy")
    body = {
        "status": status,
        "service": "backend",
        "environment": app["env"].get("APP_ENV", ""),
        "checks": {"database": database, "redis": cache},
        "timestamp": time.time(),
    }
    return web.json_response(body, status=200 if status == "healthy" else 503)


async def read_json(request):
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}',
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                 content_type="application/json")
    return data


async def login(request):
    data = await read_json(request)
    email, password = data.get("email"), data.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        return web.json_response({"error": "email and password are required"}, status=400)
    rows = await request.app["db"].fetch(
        "SELECT id, email, name, password_hash FROM users WHERE email = %s", (email.lower(),)
    )
    if not rows or not verify_password(password, rows[0][3]):
        return web.json_response({"error": "invalid credentials"}, status=401)
    user_id, email, name, _ = rows[0]
    token = await request.app["sessions"].create(user_id)
    response = web.json_response({"token": token, "user": {"id": user_id, "email": email,
                                                            "name": name}})
    response.set_cookie("session", token, httponly=True, samesite="Lax", path="/",
                        max_age=SESSION_TTL_S)
    return response


def session_token(request):
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get("session")


async def logout(request):
    await request.app["sessions"].drop(session_token(request))
    response = web.json_response({"status": "logged out"})
    response.del_cookie("session", path="/")
    return response


async def profile(request):
    user_id = await request.app["sessions"].user_id(session_token(request))
    if user_id is None:
        return web.json_response({"error": "authentication required"}, status=401)
    rows = await request.app["db"].fetch(
        "SELECT id, email, name, created_at FROM users WHERE id = %s", (user_id,)
    )
    if not rows:
        return web.json_response({"error": "authentication required"}, status=401)
    uid, email, name, created = rows[0]
    return web.json_response({"id": uid, "email": email, "name": name,
                              "created_at": created.isoformat()})


async def echo(request):
    headers = {}
    for key, value in request.headers.items():
        shown = "***" if key.lower() in MASKED_HEADERS else value
        headers[key] = f"{headers[key]}, {shown}" if key in headers else shown
    return web.json_response({
        "method": request.method, "path": request.path, "query": request.query_string,
        "http_version": f"{request.version.major}.{request.version.minor}",
        "remote": request.remote, "headers": headers,
    })


async def delay(request):
    raw = request.query.get("ms", "0")
    if not raw.isdigit() or int(raw) > MAX_DELAY_MS:
        return web.json_response({"error": f"ms must be an integer 0..{MAX_DELAY_MS}"}, status=400)
    await asyncio.sleep(int(raw) / 1000)
    return web.json_response({"delayed_ms": int(raw)})


async def websocket(request):
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    request.app["websockets"].add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        request.app["websockets"].discard(ws)
    # ended by close_websockets: this close frame (1001) goes out first (aiohttp would send
    # 1000 once the handler returns)
    going = request.app["going_away"]
    if going:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=going)
    return ws


async def close_websockets(app, why):
    app["going_away"] = why
    for ws in list(app["websockets"]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=why)


async def on_ws_close_signal(app):
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(
        close_websockets(app, b"reconnect")))


async def going_away(app):
    """On SIGTERM (the listener is closed already): close every WebSocket with 1001, then
    linger SHUTDOWN_LAMEDUCK_S while requests in flight finish."""
    await close_websockets(app, b"server shutting down")
    try:
        lameduck = min(max(float(os.environ.get("SHUTDOWN_LAMEDUCK_S", "1.0")), 0.0), 10.0)
    except ValueError:
        lameduck = 1.0
    await asyncio.sleep(lameduck)


async def close_clients(app):
    await app["redis"].close()
    if app["db"].conn is not None:
        await app["db"].conn.close()


@web.middleware
async def injected_delay(request, handler):
    """Lab fault injection (``revivadiag lab break backend-slow``): while the file named by
    REVIVADIAG_DELAY_FILE holds a number N, every request waits N ms (at most 60 s) first."""
    try:
        with open(os.environ["REVIVADIAG_DELAY_FILE"], "rb") as fh:
            await asyncio.sleep(min(int(fh.read(16)), 60000) / 1000)
    except (KeyError, OSError, ValueError):
        pass  # no file, or not a number: no delay
    return await handler(request)


@web.middleware
async def dependency_errors(request, handler):
    """A database or Redis failure inside a request is a 503 naming the dependency; a GET or
    HEAD (safe to repeat) is tried again with backoff within DEPENDENCY_RETRY_S first."""
    end = time.monotonic() + (retry_budget_s() if request.method in ("GET", "HEAD") else 0.0)
    backoff = RETRY_FIRST_S
    while True:
        try:
            return await handler(request)
        except psycopg.Error:
            failed = "database"
        except redis.exceptions.RedisError:
            failed = "redis"
        if time.monotonic() + backoff >= end:
            return web.json_response({"error": f"dependency unavailable: {failed}"}, status=503)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, RETRY_MAX_S)


def make_app(env):
    app = web.Application(middlewares=[injected_delay, dependency_errors])
    app["env"] = env
    app["db"] = Database(database_url(env))
    app["redis"] = aioredis.from_url(
        env.get("REDIS_INTERNAL_URL", "redis://redis:6379/0"),
        password=env.get("REDIS_PASSWORD") or None,
        socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S,
    )
    app["sessions"] = Sessions(app["redis"], env.get("JWT_SECRET", ""))
    app["websockets"] = weakref.WeakSet()
    app["going_away"] = b""
    app.on_startup.append(on_ws_close_signal)
    app.on_shutdown.append(going_away)
    app.on_cleanup.append(close_clients)
    app.router.add_get("/health", health)
    app.router.add_get("/api/health", health)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/user/profile", profile)
    app.router.add_route("*", "/api/debug/echo", echo)
    app.router.add_get("/api/debug/delay", delay)
    app.router.add_get("/ws", websocket)
    return app


if __name__ == "__main__":
    web.run_app(make_app(dict(os.environ)), host="0.0.0.0", port=int(os.environ.get("PORT", "3011")),
                access_log_format='%a "%r" %s %b %Tfs', keepalive_timeout=75)
