"""Delivery on its own: a webhook that fails every attempt ends in the dead-letter list,
which replays once the receiver is back; the SMS hook runs its command; an unreachable SMTP
server is a dead letter too; a full queue drops and counts, it never waits."""

from __future__ import annotations

import asyncio
import json
import sys
from email import message_from_bytes
from pathlib import Path

from hub.alerts import (
    Alert,
    AlertService,
    Channel,
    DeliverySettings,
    Dispatcher,
    Notification,
)
from hub.storage import StorageThread, open_storage
from hub.tests.alert_support import T0
from hub.tests.services import free_port
from hub.tests.test_alerts_day import SECRET, smtp_server, webhook_server


def note(
    alert_id: str = "a1",
    channels: tuple[str, ...] = ("hook",),
    summary: str = "bin-007: fill 85 >= 80",
) -> Notification:
    alert = Alert(
        id=alert_id,
        rule_id="bin-full",
        rule_version=1,
        kind="threshold",
        subject="bin-007",
        sensor="bin-007",
        gateway="gw-1",
        severity="warning",
        state="firing",
        summary=summary,
        value=85,
        fired_ms=T0,
        last_ms=T0,
    )
    return Notification("fired", alert, channels)


async def test_dead_letters_replay_sms_and_drops(storage_spec: str, tmp_path: Path) -> None:
    storage = open_storage(storage_spec, tmp_path)
    thread = StorageThread(storage)
    api = open_storage(storage_spec, tmp_path)
    dispatcher = Dispatcher(
        thread, settings=DeliverySettings(queue=5, attempts=3, backoff_s=0.01, timeout_s=3.0)
    )
    service = AlertService(api, dispatcher=dispatcher)
    hook_script = tmp_path / "sms.py"
    sms_out = tmp_path / "sms.json"
    hook_script.write_text(
        "import json, os, sys\n"
        f"open({str(sms_out)!r}, 'w').write(json.dumps({{'to': os.environ['ESTRAN_SMS_TO'],"
        " 'text': os.environ['ESTRAN_SMS_TEXT'], 'body': json.load(sys.stdin)}))\n"
    )
    task = None
    try:
        with webhook_server() as (url, posts), smtp_server() as (smtp_port, box):
            service.save_channel("hook", "webhook", {"url": url, "secret": SECRET}, "admin")
            service.save_channel(
                "sms",
                "sms",
                {"command": [sys.executable, str(hook_script)], "to": ["+33600000000"]},
                "admin",
            )
            service.save_channel(
                "mail-down",
                "email",
                {"host": "127.0.0.1", "port": free_port(), "sender": "a@b.c", "to": ["x@y.z"]},
                "admin",
            )
            service.save_channel(
                "mail",
                "email",
                {"host": "127.0.0.1", "port": smtp_port, "sender": "a@b.c", "to": ["x@y.z"]},
                "admin",
            )
            task = asyncio.create_task(dispatcher.run())
            await asyncio.sleep(0.1)
            # the receiver is down (answers 503): three attempts, then a dead letter
            from hub.tests import test_alerts_day

            test_alerts_day._Webhook.status = 503
            try:
                dispatcher.submit(note("a1", ("hook", "sms", "mail-down", "mail", "nowhere")))
                await asyncio.sleep(0.05)
                await asyncio.wait_for(dispatcher.idle.wait(), 20)
            finally:
                test_alerts_day._Webhook.status = 200
            assert len(posts) == 3
            assert dispatcher.stats.failures["webhook"] == 3
            letters = service.dead_letters()
            assert sorted(d.channel for d in letters) == ["hook", "mail-down", "nowhere"]
            hook_letter = next(d for d in letters if d.channel == "hook")
            assert "503" in hook_letter.error and hook_letter.attempts == 3
            # SMS hook: ran once, with the text and the body
            sent = json.loads(sms_out.read_text())
            assert sent["to"] == "+33600000000"
            assert sent["text"] == "bin-007: fill 85 >= 80"
            assert sent["body"]["alert"]["id"] == "a1"
            assert len(box.messages) == 1
            # a hostile sensor id cannot break the headers (nor the SMS text)
            dispatcher.submit(note("a2", ("mail", "sms"), "bin-9\r\nBcc: all@example.org: full"))
            await asyncio.sleep(0.05)
            await asyncio.wait_for(dispatcher.idle.wait(), 20)
            assert len(box.messages) == 2
            hostile = message_from_bytes(box.messages[1][1])
            assert hostile["Bcc"] is None and box.messages[1][0] == ["x@y.z"]
            assert "bin-9  Bcc: all@example.org: full" in str(hostile["Subject"])
            assert json.loads(sms_out.read_text())["text"] == "bin-9  Bcc: all@example.org: full"
            # replay: delivered this time, marked replayed, not twice
            await asyncio.to_thread(service.replay, hook_letter.id, "admin")
            await asyncio.sleep(0.05)
            await asyncio.wait_for(dispatcher.idle.wait(), 20)
            assert len(posts) == 4
            assert json.loads(posts[-1][1])["alert"]["id"] == "a1"
            assert hook_letter.id not in {d.id for d in service.dead_letters()}
            [done] = [d for d in service.dead_letters(pending_only=False) if d.id == hook_letter.id]
            assert done.replayed_by == "admin"
            try:
                await asyncio.to_thread(service.replay, hook_letter.id, "admin")
                raise AssertionError("replayed twice")
            except Exception as e:
                assert "replayed already" in str(e)
            # a full queue drops and counts, and submit never waits
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            task = None
            for i in range(10):
                dispatcher.submit(note(f"b{i}"))
            assert dispatcher.stats.dropped == 5
            # channels are listed without their secrets
            public = {c["name"]: c for c in (ch.public() for ch in service.channels())}
            assert public["hook"]["config"]["secret"] == "***"
            assert isinstance(service.channels()[0], Channel)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        thread.close()
        api.close()
