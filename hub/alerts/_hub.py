"""Alerts inside the hub process: the engine, delivery, the service and its routes, built
from the hub's settings in one place (hub/_service.py calls this)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter

from hub._mqtt import BrokerAddress
from hub.alerts._api import alerts_router
from hub.alerts._delivery import DeliverySettings, Dispatcher
from hub.alerts._engine import AlertEngine, AlertSettings
from hub.alerts._service import AlertService
from hub.storage import Storage, StorageThread

log = logging.getLogger("estran.hub.alerts")


class Alerting:
    """`await alerting.run()` runs the engine and delivery; `alerting.engine` is the ingest
    observer; `alerting.router(storage, ...)` the HTTP routes."""

    def __init__(
        self,
        open_storage: Callable[[], Storage],
        settings: AlertSettings,
        delivery: DeliverySettings,
        *,
        broker: Callable[[], BrokerAddress | None],
        gateway_group: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.thread = StorageThread(open_storage(), name="alerts")
        self.dispatcher = Dispatcher(self.thread, broker, delivery)
        self.engine = AlertEngine(
            self.thread, settings, notify=self.dispatcher.submit, gateway_group=gateway_group
        )
        self.settings = settings
        self.gateway_group = gateway_group

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.dispatcher.run(), name="alerts-delivery")
            tg.create_task(self.engine.run(), name="alerts-engine")

    def close(self) -> None:
        """Save the evaluator's state, then release the storage."""
        self.engine.save_sync()
        self.thread.close()

    def service(self, storage: Storage) -> AlertService:
        return AlertService(
            storage,
            self.engine,
            self.dispatcher,
            default_tz=self.settings.tz,
            gateway_group=self.gateway_group,
        )

    def router(self, service: AlertService) -> APIRouter:
        return alerts_router(service)


__all__ = ["Alerting"]
