"""The load generator, run as its own process: `python -m bench.load < spec.json > result.json`.

Alerts run closed-loop over a fixed number of connections, or open-loop at a fixed rate (spec
"rate": each alert is sent at its scheduled time whatever the others are doing, and its
latency counts from that time, so a service that falls behind is charged for the wait too);
position updates run open-loop at a
fixed rate (a request that finds every connection busy is not sent and counts as missed, so an
overloaded service shows up as a shortfall of the achieved rate). Each request's latency is
measured with time.perf_counter from just before it is sent to the end of its response body.
Raw latencies (ms) are returned; the harness merges processes and computes percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import uvloop

JSON = {"Content-Type": "application/json"}


async def _wait_start(start_at: float | None) -> None:
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))


async def run_alerts(session: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
    """Post every alert once, `concurrency` at a time (or at `rate` per second); latency,
    status counts, plan sizes."""
    url = spec["base_url"] + spec["path"]
    headers = {**JSON, **spec.get("headers", {})}
    points = spec["points"]
    latencies: list[float] = []
    # When each alert was sent, seconds into the run (in the order of `latencies`).
    sent_s: list[float] = []
    statuses: dict[str, int] = {}
    responders: list[int] = []
    aeds: list[int] = []
    next_index = 0

    async def post(i: int, started: float) -> None:
        lat, lng = points[i]
        body = json.dumps(
            {
                "external_id": f"{spec['prefix']}{i}",
                "location": {"lat": lat, "lng": lng},
                "category": "cardiac_arrest",
            }
        ).encode()
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            raw, status = b"", -1
        latencies.append((time.perf_counter() - started) * 1000)
        sent_s.append(started - begun)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status in (200, 201):
            plan = json.loads(raw)
            responders.append(len(plan.get("responders", [])))
            aeds.append(len(plan.get("aeds", [])))

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(points):
            i = next_index
            next_index += 1
            await post(i, time.perf_counter())

    async def paced(i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        await post(i, at)

    begun = time.perf_counter()
    rate = spec.get("rate")
    if rate:
        await asyncio.gather(*(paced(i, begun + i / rate) for i in range(len(points))))
    else:
        await asyncio.gather(*(worker() for _ in range(spec.get("concurrency", 2))))
    elapsed = time.perf_counter() - begun
    return {
        "lat_ms": latencies,
        "sent_s": sent_s,
        "statuses": statuses,
        "errors": sum(n for s, n in statuses.items() if s not in ("200", "201")),
        "elapsed_s": elapsed,
        "responders": responders,
        "aeds": aeds,
    }


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: a lean client, so that on a
    small machine the load generator's own CPU does not decide the result."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not registered as an asyncio.Transport: no isinstance.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        status = int(head[9:12])
        length = 0
        if status not in (204, 304):
            at = head.find(b"content-length:")
            if at < 0:
                waiter.set_exception(ConnectionError("no content-length"))
                return
            stop = head.find(b"\r\n", at)
            length = int(head[at + 15 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(self.buf) >= total:
            del self.buf[:total]
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))
        self.transport = None

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class LeanPool:
    """Keep-alive connections to one host, opened on demand, at most `size` at once."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self.free: list[_Conn] = []
        self.slots = asyncio.Semaphore(size)

    def locked(self) -> bool:
        return self.slots.locked()

    async def request(self, data: bytes) -> int:
        async with self.slots:
            conn = self.free.pop() if self.free else None
            if conn is None or conn.transport is None:
                _, conn = await asyncio.get_running_loop().create_connection(
                    _Conn, self.host, self.port
                )
            try:
                status = await conn.request(data)
            except BaseException:
                if conn.transport is not None:
                    conn.transport.close()
                raise
            self.free.append(conn)
            return status


def _raw_put(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run_positions(
    session: aiohttp.ClientSession, spec: dict[str, Any], stop: asyncio.Event
) -> dict[str, Any]:
    """PUT positions at spec['rate'] per second until `stop` is set (or duration_s passes)."""
    split = urlsplit(spec["base_url"])
    host, port = split.hostname or "127.0.0.1", split.port or 80
    floor = spec.get("floor", False)
    requests: list[tuple[bytes, bytes]] = []
    for vid, token, lat, lng in spec["riders"]:
        pair = []
        for dlat in (0.0, 0.00001):
            doc: dict[str, Any] = {"lat": round(lat + dlat, 6), "lng": lng}
            if floor:
                doc["volunteer_id"] = vid
            pair.append(json.dumps(doc).encode())
        headers = dict(JSON) if floor else {**JSON, "Authorization": f"Bearer {token}"}
        netloc = f"{host}:{port}"
        requests.append(
            tuple(_raw_put(netloc, spec["path"], body, headers) for body in pair)  # type: ignore[misc]
        )
    rate = float(spec["rate"])
    pool = LeanPool(host, port, spec.get("connections", 128))
    warmup = float(spec.get("warmup_s", 0.0))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    missed = 0
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    record_from = t0 + warmup

    async def one(n: int) -> None:
        first, second = requests[n % len(requests)]
        data = second if (n // len(requests)) % 2 else first
        started = time.perf_counter()
        sent_at = loop.time()
        try:
            async with asyncio.timeout(30):  # no extra task per request, as wait_for makes
                status = await pool.request(data)
        except (OSError, TimeoutError, ValueError):
            status = -1
        if sent_at >= record_from:
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    sent = 0
    duration = spec.get("duration_s")
    watcher = None
    if spec.get("stop_file"):
        watcher = asyncio.create_task(_watch(spec["stop_file"], stop))
    while not stop.is_set():
        now = loop.time()
        if duration is not None and now - t0 >= warmup + duration:
            break
        due = int((now - t0) * rate)
        while sent < due:
            if pool.locked():
                if now >= record_from:
                    missed += 1
            else:
                task = asyncio.create_task(one(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.002)
    measured_s = max(1e-9, loop.time() - record_from)
    if watcher is not None:
        watcher.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    ok = sum(n for s, n in statuses.items() if s == "204")
    return {
        "lat_ms": latencies,
        "statuses": statuses,
        "errors": sum(n for s, n in statuses.items() if s != "204"),
        "missed": missed,
        "measured_s": measured_s,
        "target_rate": rate,
        "achieved_rate": ok / measured_s,
    }


async def _watch(path: str, stop: asyncio.Event) -> None:
    """Set `stop` once the alerts process has written its stop file."""
    while not stop.is_set():
        if await asyncio.to_thread(os.path.exists, path):
            stop.set()
        await asyncio.sleep(0.1)


async def run_ws(session: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
    """Alert next to a volunteer holding /v1/me/stream; time from the alert's response to the
    offer message (negative when the offer beat the response)."""
    base = spec["base_url"]
    vid, token, _, _ = spec["rider"]
    vol = {**JSON, "Authorization": f"Bearer {token}"}
    dsp = {**JSON, **spec["headers"]}
    arrivals: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
    latencies: list[float] = []
    missing = 0
    not_offered = 0
    async with session.ws_connect(f"{base}/v1/me/stream?token={token}", heartbeat=None) as ws:

        async def reader() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await arrivals.put((time.perf_counter(), json.loads(msg.data)))

        read_task = asyncio.create_task(reader())
        await asyncio.sleep(0.3)  # the worker subscribes the socket's channel
        for i, (lat, lng) in enumerate(spec["points"]):
            async with session.put(
                f"{base}/v1/me/location", json={"lat": lat, "lng": lng}, headers=vol
            ) as resp:
                await resp.read()
            body = {
                "external_id": f"{spec['prefix']}{i}",
                "location": {"lat": lat, "lng": lng},
                "category": "cardiac_arrest",
            }
            async with session.post(f"{base}/v1/alerts", json=body, headers=dsp) as resp:
                plan = await resp.json()
                answered = time.perf_counter()
            incident = plan.get("incident_id")
            if not any(r.get("volunteer_id") == vid for r in plan.get("responders", [])):
                not_offered += 1
                continue
            offer_id = await _await_offer(arrivals, incident, answered, latencies)
            if offer_id is None:
                missing += 1
                if missing >= 3 and not latencies:
                    break  # offers are not being pushed at all: say so, do not wait 5 s each
                continue
            async with session.post(
                f"{base}/v1/me/offers/{offer_id}/decline", json={}, headers=vol
            ) as resp:
                await resp.read()
        read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read_task
    return {"lat_ms": latencies, "missing": missing, "not_offered": not_offered}


async def _await_offer(
    arrivals: asyncio.Queue[tuple[float, dict[str, Any]]],
    incident: str | None,
    answered: float,
    latencies: list[float],
) -> str | None:
    deadline = time.perf_counter() + 5.0
    while (left := deadline - time.perf_counter()) > 0:
        try:
            at, message = await asyncio.wait_for(arrivals.get(), timeout=left)
        except TimeoutError:
            return None
        if message.get("type") != "offer":
            continue
        offer = message.get("offer") if isinstance(message.get("offer"), dict) else message
        if offer.get("incident_id") != incident:
            continue
        latencies.append((at - answered) * 1000)
        return str(offer.get("id"))
    return None


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run what the spec asks for; alerts and positions together when both are given."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    result: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _wait_start(spec.get("start_at"))
        if spec.get("ws"):
            result["ws"] = await run_ws(session, spec["ws"])
            return result
        stop = asyncio.Event()
        positions = None
        if spec.get("positions"):
            positions = asyncio.create_task(run_positions(session, spec["positions"], stop))
        if spec.get("alerts"):
            await asyncio.sleep(float(spec.get("alerts_after_s", 0.0)))
            result["alerts"] = await run_alerts(session, spec["alerts"])
            stop.set()
            if spec.get("stop_file"):
                await asyncio.to_thread(Path(spec["stop_file"]).write_text, "done")
        if positions is not None:
            result["positions"] = await positions
    return result


if __name__ == "__main__":
    # On uvloop, as the service's workers: the load generator shares the machine's CPUs with
    # what it measures, so its own cost per request is kept low.
    out = uvloop.run(main(json.load(sys.stdin)))
    json.dump(out, sys.stdout)
