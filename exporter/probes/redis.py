"""Redis health: memory against maxmemory, the eviction policy, OOM replies, restarts that lost data.

Feeds "Redis at maxmemory limit" and "redis pod dies + node is different". One pipelined round
trip per run (INFO + SCARD), so it costs Redis about what one `redis-cli INFO` does. It keeps no state
between runs: a restart that lost the data is seen by the rules (RedisRestartedEmpty) in the TSDB.
"""

from __future__ import annotations

from typing import Any

from exporter.config import Config, RedisConfig
from exporter.engine import Probe
from exporter.errors import MalformedReply
from exporter.probes import redis_conn
from exporter.probes.deps import Dependencies
from exporter.samples import Samples, counter, gauge, info

UP = gauge("honeydue_redis_up", "Whether Redis answered the probe (1) or not (0).")
UPTIME = gauge("honeydue_redis_uptime_seconds", "Seconds since the Redis server started.")
MEMORY_USED = gauge("honeydue_redis_memory_used_bytes", "Memory Redis has allocated (used_memory).")
MEMORY_MAX = gauge("honeydue_redis_memory_max_bytes", "The maxmemory setting (0 = no limit).")
POLICY = info("honeydue_redis_maxmemory_policy_info", "The maxmemory-policy in effect.", "policy")
OOM_ERRORS = counter(
    "honeydue_redis_oom_errors_total",
    "Commands Redis refused with an OOM error reply since it started (errorstat_OOM).",
)
EVICTED = counter("honeydue_redis_evicted_keys_total", "Keys evicted because of maxmemory since Redis started.")
KEYS = gauge("honeydue_redis_keys", "Keys per database.", "db")
ASYNQ_QUEUES = gauge(
    "honeydue_redis_asynq_queues", "Queue names in Asynq's registry set asynq:queues (0 = registry gone)."
)

ASYNQ_REGISTRY_KEY = "asynq:queues"


class RedisProbe(Probe):
    """Reads INFO and Asynq's queue registry in one pipelined round trip."""

    family = kind = "redis"

    def __init__(self, cfg: RedisConfig, deps: Dependencies, name: str = "redis") -> None:
        super().__init__(name, cfg.interval, cfg.timeout)
        self._cfg = cfg
        self._deps = deps
        self._client = redis_conn.client(cfg, cfg.timeout)

    async def collect(self) -> Samples:
        try:
            async with self._deps.throttle("redis"):
                pipe = self._client.pipeline(transaction=False)
                pipe.info("default")  # exactly the sections read; the ACL allows only `INFO default`
                pipe.scard(ASYNQ_REGISTRY_KEY)
                info_reply, queues = await pipe.execute()
        except (AttributeError, TypeError, ValueError, KeyError) as exc:  # redis-py's INFO parser on a wrong reply
            await self._client.connection_pool.disconnect()
            raise MalformedReply(f"unexpected reply to INFO/SCARD ({type(exc).__name__})") from None
        except BaseException:
            await self._client.connection_pool.disconnect()
            raise
        try:
            return self._samples(info_reply, int(queues))
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            await self._client.connection_pool.disconnect()
            raise MalformedReply(f"unexpected reply to INFO/SCARD ({type(exc).__name__})") from None

    def _samples(self, reply: dict[str, Any], queues: int) -> Samples:
        # A restart that lost the data is told by the rules from the TSDB (uptime back near zero while Asynq's
        # registry emptied or its counters restarted): no state of this process's must survive its restart.
        uptime = float(reply["uptime_in_seconds"])
        s = Samples()
        s.add(UP, 1)
        s.add(UPTIME, uptime)
        s.add(MEMORY_USED, float(reply["used_memory"]))
        s.add(MEMORY_MAX, float(reply.get("maxmemory", 0)))
        s.add(POLICY, policy=str(reply.get("maxmemory_policy", "unknown")))
        oom = reply.get("errorstat_OOM", {})
        s.add(OOM_ERRORS, float(oom.get("count", 0)) if isinstance(oom, dict) else 0.0)
        s.add(EVICTED, float(reply.get("evicted_keys", 0)))
        # INFO keyspace lists only non-empty databases; db 0 (the one honeyDue uses) is always reported.
        keys = {"0": 0.0} | {
            key[2:]: float(value.get("keys", 0))
            for key, value in reply.items()
            if key.startswith("db") and key[2:].isdigit() and isinstance(value, dict)
        }
        for db, count in sorted(keys.items()):
            s.add(KEYS, count, db=db)
        s.add(ASYNQ_QUEUES, queues)
        return s

    def failed(self, reason: str) -> Samples:
        return Samples.of(UP, 0)

    async def close(self) -> None:
        await self._client.aclose()


def build(config: Config, deps: Dependencies) -> list[Probe]:
    return [RedisProbe(config.redis, deps)] if config.redis.enabled else []
