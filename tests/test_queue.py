"""The ORM broker Gust runs on (workflows.queue.GustORM): several jobs per
dequeue in one write, each handed out once until its retry time passes."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ

from workflows.queue import GustORM, GustRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 5)
    monkeypatch.setattr(Conf, "POLL", 0.01)
    return GustORM(list_key="gust-test-queue")


def test_the_settings_use_it_and_do_not_store_successful_jobs(monkeypatch):
    assert settings.Q_CLUSTER["broker_class"] == "workflows.queue.gust_broker"
    assert isinstance(get_broker(), GustORM)
    monkeypatch.setattr(Conf, "ORM", None)  # as on GUST_BROKER=redis
    assert type(get_broker()) is GustRedis
    assert settings.Q_CLUSTER["save_limit"] < 0  # django-q2: successful jobs are not saved


def test_dequeue_takes_up_to_bulk_jobs_oldest_first_and_each_once(broker):
    for i in range(7):
        broker.enqueue(f"payload-{i}")
    first = broker.dequeue()
    assert [p for _, p in first] == [f"payload-{i}" for i in range(5)]
    second = broker.dequeue()
    assert [p for _, p in second] == ["payload-5", "payload-6"]
    assert broker.dequeue() is None  # all taken: nothing is handed out twice
    locked_until = set(OrmQ.objects.values_list("lock", flat=True))
    assert min(locked_until) > timezone.now() + timedelta(seconds=Conf.RETRY - 5)


def test_an_unacknowledged_job_comes_back_after_its_retry_time(broker):
    broker.enqueue("lost-with-its-worker")
    ((ack_id, _),) = broker.dequeue()
    assert broker.dequeue() is None
    OrmQ.objects.filter(id=ack_id).update(lock=timezone.now() - timedelta(seconds=1))
    assert broker.dequeue() == [(ack_id, "lost-with-its-worker")]
    broker.acknowledge(ack_id)
    assert not OrmQ.objects.exists()


def test_other_queues_are_not_touched(broker):
    GustORM(list_key="another-queue").enqueue("not-mine")
    assert broker.dequeue() is None
    assert OrmQ.objects.get().lock <= timezone.now()


def test_a_merged_job_acknowledges_every_job_it_stands_for(broker):
    for i in range(3):
        broker.enqueue(f"payload-{i}")
    taken = broker.dequeue()
    broker.acknowledge([ack for ack, _ in taken[:2]])
    assert list(OrmQ.objects.values_list("payload", flat=True)) == ["payload-2"]


def test_the_redis_broker_takes_up_to_bulk_jobs_per_dequeue(monkeypatch):
    import os

    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.from_url(url).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    monkeypatch.setattr(Conf, "REDIS", url)
    monkeypatch.setattr(Conf, "BULK", 3)
    b = GustRedis(list_key=f"gust-test-bulk-{os.getpid()}")
    try:
        for i in range(4):
            b.enqueue(f"p{i}")
        assert [p for _, p in b.dequeue()] == [b"p0", b"p1", b"p2"]
        assert [p for _, p in b.dequeue()] == [b"p3"]
    finally:
        b.delete_queue()
