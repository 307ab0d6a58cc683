"""honeyDue's worker side for the drill, on the real Asynq: a worker server, a scheduler with one cron entry,
and (on demand) a client enqueueing an email a second. Processes of the Asynq peer (asynqpeer.py).

The scenarios break it the way production breaks: the worker SIGKILLed (its heartbeat expires after
Asynq's 10 s), the cron task's handler failing while the entry is unique (the failed task keeps the
lock in retry, so every later enqueue is refused as a duplicate: the entry stops enqueuing while the
scheduler keeps running it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from testbed.asynqpeer import AsynqPeer, Started


class AsynqApp:
    """The worker (queues default and email), the scheduler (CRON_SPEC, unique) and the email client."""

    QUEUES = "default=1,email=1"
    CRON_SPEC = "@every 10s"
    CRON_TYPE = "reminders:daily_digest"

    def __init__(self, redis_port: int, workdir: Path) -> None:
        self.redis_port = redis_port
        self.peer = AsynqPeer(f"127.0.0.1:{redis_port}", log=workdir / "asynq.log")
        self.control = workdir / "asynq-handlers.json"  # the worker's handler overrides (task type -> action)
        self.worker: Started | None = None
        self.scheduler: Started | None = None
        self.client: Started | None = None

    def start(self) -> None:
        self.start_worker()
        entry = f"{self.CRON_SPEC}|{self.CRON_TYPE}|default|succeed|unique=1h,max-retry=1000"
        self.scheduler = self.peer.start("scheduler", "-entry", entry)

    def stop(self) -> None:
        self.peer.stop_all()
        self.control.unlink(missing_ok=True)

    # --- the worker ---------------------------------------------------------------------------------
    def start_worker(self) -> None:
        self.worker = self.peer.start("worker", "-queues", self.QUEUES, "-concurrency", "10",
                                      "-shutdown-timeout", "2s", "-control", str(self.control))

    def kill_worker(self) -> None:
        """SIGKILL: no graceful shutdown; the server stays registered until its heartbeat expires."""
        if self.worker is not None:
            self.peer.kill(self.worker)
            self.worker = None

    def start_client(self) -> None:
        """honeyDue's API enqueueing an email a second (one long-lived Asynq client)."""
        self.client = self.peer.start("enqueue", "-queue", "email", "-type", "email:send", "-every", "1s")

    def stop_client(self) -> None:
        if self.client is not None:
            self.peer.stop(self.client)
            self.client = None

    # --- the cron entry -----------------------------------------------------------------------------
    @property
    def cron_entry_id(self) -> str:
        assert self.scheduler is not None and self.scheduler.entries
        return self.scheduler.entries[0]

    def fail_cron_handler(self, failing: bool) -> None:
        """The worker's handler for the cron task type fails from now on (or works again)."""
        if failing:
            self.control.write_text(json.dumps({self.CRON_TYPE: "fail"}))
        else:
            self.control.unlink(missing_ok=True)

    def _entry(self) -> dict[str, Any] | None:
        for entry in self.peer.inspect(events=1)["scheduler_entries"]:
            if entry["id"] == self.cron_entry_id:
                return dict(entry)
        return None

    def wait_cron_refused(self, timeout: float = 60.0) -> None:
        """Until the scheduler ran the entry without enqueuing (its prev passed its newest enqueue)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self._entry()
            if entry and entry["events"] and entry["prev"] - entry["events"][0]["enqueued_at"] >= 5:
                return
            time.sleep(1)
        raise TimeoutError(f"the cron entry kept enqueuing for {timeout:g}s")

    def age_cron_history(self, seconds: float) -> None:
        """Every enqueue in the entry's history becomes `seconds` older (its score; Asynq's own events)."""
        client = redis.Redis(port=self.redis_port, socket_timeout=2, socket_connect_timeout=2)
        try:
            key = f"asynq:scheduler_history:{self.cron_entry_id}"
            events: list[Any] = list(client.zrange(key, 0, -1, withscores=True))
            if events:
                client.zadd(key, {bytes(member): float(score) - seconds for member, score in events}, xx=True)
        finally:
            client.close()
