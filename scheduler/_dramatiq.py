"""The worker pool: the scheduler's runs as messages on Redis (Dramatiq), run by `harvest worker`
processes on any machine that reaches Redis, the database and the vault.

A message is a run request, the job's id and the run's id, nothing secret. Facts it is designed by
(Dramatiq 2, its RedisBroker), and what each default became:

- A message is acked after its actor returns (acks late, the default): a worker that dies mid-run
  leaves it un-acked, and another worker's broker puts it back in the queue once the dead one has
  sent no heartbeat for ``HARVEST_WORKER_HEARTBEAT_S``. Every Redis command is a heartbeat; the
  delay queue's consumer polls all the time, so a worker whose threads are all busy still beats.
- That requeue is queue maintenance, run by 1 in 1,000 commands by default: a pool's few commands
  would leave a dead worker's run waiting for hours, so every command runs it (cheap: two range
  reads of sorted sets, more only while a dead worker's messages are moved).
- ``Retries`` retries a failing message 20 times by default: off (``max_retries=0``); the failure
  policy decides retries, as on one machine, each a new message sent with ``delay=``.
- ``TimeLimit`` (10 minutes by default) interrupts the thread with an asynchronous exception,
  which would land anywhere in the run's event loop, cut a big list's first run and leave its
  browser and run row to chance. It is left out: ``JobRuns`` cuts a run off at its own limit,
  from the robot's last good runs (``time_limit_s``), by cancelling it: nothing is published.
- Each worker prefetches twice its threads by default, holding runs an idle worker could take:
  it takes as many as it has threads.
- A dead worker's account lease is free at once for a process of its host, else after its ttl
  (``store.Lease``); its Chromium is swept by the next run of its host (``Harvester``).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from urllib.parse import urlsplit

import dramatiq
import redis
import sqlalchemy as sa
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.middleware import Retries
from loguru import logger

from alerts import Notifier
from robots.runtime import RobotSpec
from scheduler._planning import PlannedJob, plan
from scheduler._policy import FailurePolicy
from scheduler._runs import JobRuns, RunRequest
from settings import Settings
from store import Run, Store, make_engine
from vault import Vault

QUEUE = "harvest"
ACTOR = "harvest_run"
WORKER = "harvest worker"  # what holds the accounts of a worker's runs
LIMIT_RUNS = 5  # the last good runs a run's time limit is read from
LIMIT_FACTOR = 3.0  # a run may take this many times the longest of them (a slow night, more records)
LIMIT_FLOOR_S = 15 * 60.0  # never less: a login with a captcha, a system slow that night
LIMIT_DEFAULT_S = 3 * 3600.0  # a job without a good run yet: its list's length is unknown


class PoolUnavailable(RuntimeError):
    """The pool's Redis is not set or cannot be reached."""


def connect(settings: Settings) -> RedisBroker:
    """The pool's broker, its Redis answering; ``PoolUnavailable`` names the fix if it does not."""
    if settings.redis_url is None:
        raise PoolUnavailable(
            "HARVEST_REDIS_URL 未设置：写上工作池的 Redis 网址，例如 redis://:密码@主机:6379/0"
        )
    url = settings.redis_url.get_secret_value()
    broker = RedisBroker(
        url=url,
        middleware=[Retries(max_retries=0)],
        heartbeat_timeout=int(settings.worker_heartbeat_s * 1000),
        maintenance_chance=MAINTENANCE_SCALE,
    )
    try:
        broker.client.ping()
    except redis.RedisError as exc:
        parts = urlsplit(url)  # host and port only: the URL may hold a password
        raise PoolUnavailable(
            f"无法连接工作池的 Redis {parts.hostname}:{parts.port or 6379}（{type(exc).__name__}）："
            "检查 HARVEST_REDIS_URL 和 Redis 服务是否在运行"
        ) from exc
    broker.declare_queue(QUEUE)
    return broker


def send(broker: RedisBroker, request: RunRequest, delay: float = 0) -> None:
    """Put ``request`` on the queue, to be taken after ``delay`` seconds."""
    message = dramatiq.Message(
        queue_name=QUEUE, actor_name=ACTOR, args=(request.job, request.run_id), kwargs={}, options={}
    )
    broker.enqueue(message, delay=int(delay * 1000) or None)


def time_limit_s(store: Store, planned: PlannedJob) -> float:
    """How long a run of ``planned`` may take: a generous multiple of its last good runs, else a default."""
    runs = Run.__table__.c  # type: ignore[attr-defined]
    query = (
        sa.select(runs.started_at, runs.finished_at)
        .where(
            runs.robot == planned.robot.name,
            runs.account == planned.account,
            runs.status == "ok",
            runs.finished_at.is_not(None),
        )
        .order_by(runs.started_at.desc())
        .limit(LIMIT_RUNS)
    )
    with store.engine.connect() as conn:
        took = [(end - start).total_seconds() for start, end in conn.execute(query)]
    return max(LIMIT_FLOOR_S, LIMIT_FACTOR * max(took)) if took else LIMIT_DEFAULT_S


class DramatiqExecutor:
    """The scheduler's side: each request becomes a message; a stop leaves queued ones to the workers."""

    def __init__(self, settings: Settings) -> None:
        self.broker = connect(settings)

    def submit(self, request: RunRequest) -> None:
        send(self.broker, request)
        logger.info("已把 {}（运行 {}）交给工作池", request.job, request.run_id[:8])

    def stop(self, timeout: float) -> None:
        self.broker.close()


class PoolWorker:
    """`harvest worker`: takes requests off the queue and runs ``threads`` of them at once."""

    def __init__(
        self,
        settings: Settings,
        threads: int,
        *,
        notifier: Notifier | None = None,
        robots: dict[str, RobotSpec] | None = None,
    ) -> None:
        self.settings = settings
        store = Store(make_engine(settings.resolved_database_url))
        vault = Vault.open(settings)
        self.broker = connect(settings)
        jobs = {job.id: job for job in plan(settings, vault, robots)}
        notifier = notifier or Notifier.from_settings(settings)
        policy = FailurePolicy(settings, store, vault, notifier, retry=self.retry)
        self.runs = JobRuns(
            settings,
            store,
            vault,
            policy,
            jobs,
            holder=WORKER,
            requeue=functools.partial(send, self.broker),
            time_limit=functools.partial(time_limit_s, store),
        )
        dramatiq.Actor(
            self._receive,
            broker=self.broker,
            actor_name=ACTOR,
            queue_name=QUEUE,
            priority=0,
            options={"max_retries": 0},
        )
        self.worker = dramatiq.Worker(self.broker, queues={QUEUE}, worker_threads=threads)
        self.worker.queue_prefetch = threads
        self._executing = 0
        self._guard = threading.Lock()

    def retry(self, planned: PlannedJob, delay: float) -> None:
        """The failure policy's retry: a new request for ``planned``, taken after ``delay`` seconds."""
        send(self.broker, RunRequest(f"retry:{planned.id}:{uuid.uuid4().hex[:8]}", uuid.uuid4().hex), delay)

    def _receive(self, job: str, run_id: str) -> None:
        with self._guard:
            self._executing += 1
        try:
            self.runs.execute(RunRequest(job, run_id))
        finally:
            with self._guard:
                self._executing -= 1

    def start(self) -> None:
        self.worker.start()
        threads = self.worker.worker_threads
        logger.info("工作进程已启动：{} 个任务，同时运行 {} 个", len(self.runs.jobs), threads)

    def stop(self, timeout: float | None = None) -> None:
        """Take no more; let running runs finish for ``timeout`` seconds, then cancel them (nothing
        published) and put them back in the queue for another worker."""
        timeout = self.settings.stop_timeout_s if timeout is None else timeout
        self.runs.stopping.set()
        deadline = time.monotonic() + timeout
        while self._executing and time.monotonic() < deadline:
            time.sleep(0.1)
        self.runs.cancel_all()
        self.worker.stop()
        self.broker.close()
        logger.info("工作进程已停止")
