#!/usr/bin/python3
"""Redis entrypoint: requirepass from REDIS_PASSWORD, written to a mode-0600 config file
owned by the redis user, so the password never appears on a command line. The data is kept
in an append-only file under /data (a volume in the lab's compose files), so a container
replaced on the same volume keeps its keys."""

import os
import pwd

CONF = "/run/redis/redis.conf"


def main():
    password = os.environ.get("REDIS_PASSWORD", "")
    if not password:
        raise SystemExit("redis: REDIS_PASSWORD is not set")
    user = pwd.getpwnam("redis")
    os.makedirs("/run/redis", exist_ok=True)
    os.chown("/run/redis", user.pw_uid, user.pw_gid)
    fd = os.open(CONF, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(
            "bind 0.0.0.0\nport 6379\nprotected-mode no\ndir /data\nsave \"\"\n"
            "appendonly yes\nappendfsync everysec\nlogfile \"\"\ndaemonize no\n"
            "maxclients 1000\n"
            f"requirepass {password}\n"
        )
    os.chown(CONF, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.execv("/usr/bin/redis-server", ["redis-server", CONF])


if __name__ == "__main__":
    main()
