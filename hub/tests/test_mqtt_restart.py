"""The hub's MQTT tasks come back after a broker restart, and still stop when asked.

Regression (a CI run of hil-tests/test_sync_e2e.py lost readings in its fault test): on
Python 3.11 a TaskGroup whose child fails while the group waits in `__aexit__` cancels its
parent task and never uncancels it, so the parent's `cancelling()` stays at 1 for the rest
of its life. The ingest worker and the fleet link run such a group for each session; after a
broker restart their next `honour_cancel()` (or `cancelling()` check) took that leftover for
a request to stop, and the task ended quietly: nothing ingested, nothing acknowledged, no
configuration published. Each
session now runs in a task of its own (`hub._mqtt.in_session_task`), so what it leaves dies
with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from hub._ingest import IngestSettings, IngestWorker
from hub._mqtt import BrokerAddress, in_session_task
from hub.fleet_api import FleetHub
from hub.storage import StorageThread, open_storage
from hub.tests.brokers import mosquitto
from hub.tests.services import free_port
from protocols import wire
from protocols.block import encode_block
from protocols.reading import Reading

T0 = 1_764_547_200_000
GW = "gw-restart"


def batch(first: int, n: int, number: int) -> bytes:
    readings = [
        Reading("soil-001", "moisture", "%RH", 30.0 + i, T0 + 1000 * (first + i)) for i in range(n)
    ]
    return wire.encode_data(
        wire.DataBatch(1, number, first, first + n - 1, n, [encode_block(first, readings)])
    )


@contextlib.asynccontextmanager
async def broker(conf: Path, port: int) -> AsyncIterator[None]:
    async with mosquitto(conf, port):
        yield


async def acked(port: int, first: int, n: int, number: int) -> wire.Ack:
    """Publish one data batch as gateway GW and return the hub's ack."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"{GW}-{number}") as gw:
        await gw.subscribe(wire.topic(GW, "ack"), qos=1)
        await gw.publish(wire.topic(GW, "data"), batch(first, n, number), qos=1)
        async with asyncio.timeout(15):
            async for message in gw.messages:
                assert isinstance(message.payload, bytes)
                return wire.decode_ack(message.payload)
    raise AssertionError("no ack")


async def test_an_ingest_worker_subscribes_again_after_a_broker_restart(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    storage = StorageThread(open_storage("sqlite", tmp_path), name="storage-restart")
    connected = asyncio.Event()
    worker = IngestWorker(
        "ingest-restart",
        BrokerAddress("127.0.0.1", port),
        storage,
        shared=False,
        prefer_v5=True,
        settings=IngestSettings(reconnect_min=0.1, reconnect_max=0.5),
        connected=connected,
    )
    task: asyncio.Task[None] | None = None
    try:
        for restart in range(3):
            async with broker(conf, port):
                if task is None:
                    task = asyncio.create_task(worker.run(), name="ingest-restart")
                async with asyncio.timeout(20):
                    while not connected.is_set():
                        assert not task.done(), "the worker stopped after a broker restart"
                        await asyncio.sleep(0.05)
                ack = await acked(port, 1 + 10 * restart, 10, restart + 1)
                assert ack.ranges == [(1 + 10 * restart, 10 * (restart + 1))]
                assert not task.done(), "the worker stopped after a broker restart"
                assert task.cancelling() == 0, "a leftover cancel on the worker's task"
            # the broker is gone: the worker notices and waits for it
            async with asyncio.timeout(20):
                while connected.is_set():
                    await asyncio.sleep(0.05)
        assert storage.storage.count_readings(GW) == 30
        # it still stops when asked, promptly
        task.cancel()
        async with asyncio.timeout(10):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert task.cancelled()
    finally:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        storage.close()


async def test_the_fleet_link_subscribes_again_after_a_broker_restart(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    hub = FleetHub(tmp_path / "hub")
    task: asyncio.Task[None] | None = None
    try:
        for _restart in range(3):
            async with broker(conf, port):
                if task is None:
                    task = asyncio.create_task(
                        hub._mqtt(BrokerAddress("127.0.0.1", port)), name="fleet-mqtt"
                    )
                async with asyncio.timeout(20):
                    while not hub.connected.is_set():
                        assert not task.done(), "the fleet link stopped after a broker restart"
                        await asyncio.sleep(0.05)
                assert task.cancelling() == 0, "a leftover cancel on the fleet link's task"
            async with asyncio.timeout(20):
                while hub.connected.is_set():
                    await asyncio.sleep(0.05)
        assert task is not None
        task.cancel()
        async with asyncio.timeout(10):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert task.cancelled()
    finally:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        hub.close()


async def test_a_storage_call_cancelled_as_its_result_arrives_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest worker's commit task waits on its storage thread. When the session ends (a
    broker restart) the TaskGroup cancels it; if the storage call's result arrived in the
    same turn of the loop, `asyncio.wait_for` (Python 3.11) returned it and swallowed the
    cancel: the commit task ran on, found nothing more to commit and waited on its empty
    queue for ever, so the session never ended and the worker never subscribed again."""
    storage = StorageThread(open_storage("sqlite", tmp_path), name="storage-cancel")
    try:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[int] = loop.create_future()
        monkeypatch.setattr(loop, "run_in_executor", lambda _pool, _fn, *_args: result)
        call = asyncio.create_task(storage.call(lambda: 1))
        await asyncio.sleep(0)  # the call now waits for its result
        result.set_result(1)  # the result and the cancel in the same turn of the loop
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        storage.close()


async def _fail_soon() -> None:
    await asyncio.sleep(0.01)
    raise aiomqtt.MqttError("lost")


async def _session_with_a_group() -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_fail_soon())
        tg.create_task(asyncio.sleep(10))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the TaskGroup leak is Python 3.11's")
async def test_a_failed_group_leaves_a_cancel_on_its_task_on_3_11() -> None:
    """The mechanism, shown: without a task of its own the caller keeps the leftover."""

    async def caller() -> int:
        with contextlib.suppress(ExceptionGroup):
            await _session_with_a_group()
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert await asyncio.create_task(caller()) == 1


async def test_a_session_task_keeps_its_caller_clean_and_forwards_cancels() -> None:
    async def caller() -> int:
        with contextlib.suppress(ExceptionGroup):
            await in_session_task(_session_with_a_group(), "session")
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert await asyncio.create_task(caller()) == 0

    started = asyncio.Event()

    async def session() -> None:
        started.set()
        await asyncio.sleep(30)

    outer = asyncio.create_task(in_session_task(session(), "session"))
    await started.wait()
    outer.cancel()
    async with asyncio.timeout(5):
        with contextlib.suppress(asyncio.CancelledError):
            await outer
    assert outer.cancelled()
