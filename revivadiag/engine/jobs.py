"""The probe job format shared by every probe method (setns, sidecar, exec).

A job is a plain JSON-able dict so that the same batch can run in a forked worker that
entered a container's network namespace, in a sidecar container sharing that namespace,
or through ``docker exec``. Results are dicts too, one per job, in the same order.

Job kinds and their result fields:

``dns``   ``{"kind": "dns", "name": "backend", "server": "127.0.0.11", "timeout_s": 1.0}``
          -> ``answers`` (list[str]), ``rcode``, ``latency_ms``, ``error_type``, ``error``

``tcp``   ``{"kind": "tcp", "host": "10.0.0.3", "port": 5432, "timeout_s": 0.5, "retries": 2}``
          -> ``outcome`` (open/refused/timeout/unresolvable/error), ``connect_ms``,
          ``attempts``, ``ip``, ``error_type``, ``error``.  A host name is resolved at
          ``server`` (Docker's resolver) first.

``http``  ``{"kind": "http", "url": "http://backend:3011/api/health", "samples": 20,
          "warmup": 3, "timeout_s": 2.0, "headers": {...}, "new_connection": true}``
          -> ``samples``: list of ``{"dns_ms", "connect_ms", "first_byte_ms", "total_ms",
          "status"}``, ``errors``: list of ``{"error_type", "error"}``

``postgres`` ``{"kind": "postgres", "host": ..., "port": 5432, "user": ..., "password": ...,
          "dbname": ..., "timeout_s": 2.0}`` -> ``ok``, ``response_ms``, ``server_version``,
          ``error_type``, ``error``  (the password never appears in a result)

``redis`` ``{"kind": "redis", "host": ..., "port": 6379, "password": ..., "timeout_s": 2.0}``
          -> ``ok``, ``response_ms``, ``error_type``, ``error``

Every result also carries ``kind`` and ``method`` (which probe method produced it).
"""

from __future__ import annotations

from typing import Any

Job = dict[str, Any]
Result = dict[str, Any]

JOB_KINDS = ("dns", "tcp", "http", "postgres", "redis")
DOCKER_DNS = "127.0.0.11"
