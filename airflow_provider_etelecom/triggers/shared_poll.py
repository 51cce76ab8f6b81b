"""The poll that deferred waits of one connection and OA share on a triggerer: one listing per poll.

Airflow runs every trigger of a triggerer process in one event loop. Each
:class:`~airflow_provider_etelecom.triggers.consent_replies.ConsentRepliesTrigger` that names an OA
joins the :class:`SharedPoll` of its ``(etelecom_conn_id, oa_id)`` in this process (a module-level
registry, one poll per event loop) and asks it for each check instead of listing on its own. The
poll runs whenever a wait is due, at the shortest ``poke_interval`` of its waits (a wait's first
check at once), and reads once for all of them in one worker thread
(:meth:`~airflow_provider_etelecom.client.shared_span.SharedSpan.read`); the waits it cannot serve
are checked with their own read in the same poll, after it, at most :data:`OWN_READS` at a time.
Each of those lanes has its own client (a ``requests`` session keeps one connection), and the
shared read uses the first. So one poll holds :data:`OWN_READS` clients, worker threads and TCP
connections at most, whatever the number of waits; the event loop only schedules.

Each wait still decides alone, with its own deadline (it stops waiting for a poll at it), its own
not-found grace and its own event. A failure of the shared listing reaches each wait as its own
check's failure would: a transient one is checked again at the next poll (not before its
``Retry-After``), a refused key (after the client's one re-read of the connection) ends each wait
with its own ``error`` event. If the poll itself stops (a bug, a cancelled task), every wait waiting
on it gets :class:`SharedPollStopped` and goes on with its own reads: none waits forever. The poll
holds the client (and so the key) in memory only; it is never serialised, and its ``repr`` and logs
name the connection id and the OA, never the key.

Airflow 3.3's shared streams (``BaseEventTrigger.shared_stream_key``) are not used here: they open
one stream with one trigger's keyword arguments and let a subscriber that joins late miss events,
while each wait here needs its own consents read from its own start, and Airflow 2.11 has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from airflow_provider_etelecom.client import EtelecomClient
from airflow_provider_etelecom.client.replies import Decision
from airflow_provider_etelecom.client.shared_span import SharedSpan, SharedWait
from airflow_provider_etelecom.exceptions import EtelecomError, EtelecomTransientError
from airflow_provider_etelecom.hooks.etelecom import EtelecomHook

log = logging.getLogger(__name__)

#: Waits of one poll checked with their own read at the same time: worker threads, clients, connections.
OWN_READS = 2
#: Seconds a poll that a new wait started waits for others that arrive with it (a triggerer starts
#: the triggers it was assigned together).
JOIN_GATHER_S = 0.02


class SharedPollStopped(Exception):
    """The shared poll stopped while a wait was waiting on it; the wait goes on with its own reads."""


@dataclass(eq=False)
class Member:
    """One wait in a :class:`SharedPoll`: when it may be polled next, and the answer it waits for."""

    shared: SharedWait
    poke_interval: float
    future: asyncio.Future[Decision] | None = None
    not_before: float = -math.inf
    polled: bool = False
    in_poll: bool = False


_POLLS: dict[tuple[str, str], SharedPoll] = {}


def join_shared_poll(
    etelecom_conn_id: str, oa_id: str, shared: SharedWait, poke_interval: float
) -> tuple[SharedPoll, Member]:
    """Join (or start) the poll of ``(etelecom_conn_id, oa_id)`` in the running event loop.

    :return: the poll and the wait's membership (:meth:`SharedPoll.check`, :meth:`SharedPoll.leave`).
    """
    loop = asyncio.get_running_loop()
    poll = _POLLS.get((etelecom_conn_id, oa_id))
    if poll is None or poll.closed or poll.loop is not loop:
        poll = _POLLS[(etelecom_conn_id, oa_id)] = SharedPoll(etelecom_conn_id, oa_id, loop)
    member = Member(shared, float(poke_interval))
    poll.members.append(member)
    poll.wake()
    return poll, member


class SharedPoll:
    """The poll of one ``(etelecom_conn_id, oa_id)`` in one event loop (see the module's docstring)."""

    def __init__(self, etelecom_conn_id: str, oa_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.etelecom_conn_id, self.oa_id, self.loop = etelecom_conn_id, oa_id, loop
        self.span = SharedSpan(oa_id)
        self.members: list[Member] = []
        self.closed = False
        self.polls = 0
        self._clients: list[EtelecomClient] = []
        self._lanes: asyncio.Queue[EtelecomClient] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._phase: float | None = None
        self._task = loop.create_task(self._run(), name=f"etelecom-shared-poll:{etelecom_conn_id}:{oa_id}")
        self._task.add_done_callback(self._stopped)

    def __repr__(self) -> str:
        """Name the poll by connection id and OA (never the key)."""
        return f"SharedPoll(etelecom_conn_id={self.etelecom_conn_id!r}, oa_id={self.oa_id}, waits={len(self.members)})"

    @property
    def interval(self) -> float:
        """The shortest poke interval among the waits (seconds between polls)."""
        return min((member.poke_interval for member in self.members), default=math.inf)

    def wake(self) -> None:
        """Let the poll look again at who is waiting."""
        self._wake.set()

    async def check(self, member: Member, timeout: float) -> Decision:
        """Wait for the next poll that checks ``member`` and return its decision.

        :param timeout: seconds to wait at most (to the wait's deadline).
        :raises asyncio.TimeoutError: no poll answered within ``timeout``.
        :raises SharedPollStopped: the poll stopped; check alone from now on.
        :raises EtelecomError: the check's failure, as a lone check would raise it.
        """
        if self.closed:
            raise SharedPollStopped(f"The shared poll of {self!r} has stopped")
        member.future = self.loop.create_future()
        self.wake()
        return await asyncio.wait_for(member.future, timeout)

    def leave(self, member: Member) -> None:
        """Leave the poll (fired, timed out or cancelled): the next poll no longer reads for ``member``."""
        if member in self.members:
            self.members.remove(member)
        if member.future is not None and not member.future.done():
            member.future.cancel()
        self.wake()

    def _waiting(self) -> list[Member]:
        return [m for m in self.members if m.future is not None and not m.future.done() and not m.in_poll]

    def _next_tick(self, after: float) -> float:
        """The first poll time after ``after`` on the poll's grid (every ``interval`` from its first poll)."""
        phase, interval = self._phase if self._phase is not None else after, self.interval
        if not math.isfinite(interval) or interval <= 0:
            return after
        return phase + interval * (math.floor((after - phase) / interval) + 1)

    async def _run(self) -> None:
        try:
            for _ in range(OWN_READS):
                self._clients.append(await EtelecomHook(self.etelecom_conn_id).aget_client())
                self._lanes.put_nowait(self._clients[-1])
        except EtelecomError as error:  # every wait waiting now ends as a lone wait's would
            for member in self._waiting():
                assert member.future is not None
                member.future.set_exception(error)
            self.closed = True
            return
        while True:
            self._wake.clear()
            if not self.members:
                self.closed = True  # in the same step as the check: nobody joins a poll that is ending
                return
            waiting = self._waiting()
            due = min((m.not_before for m in waiting), default=None)
            now = self.loop.time()
            if due is None or due > now:
                timeout = None if due is None else due - now
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            if any(not m.polled for m in waiting):
                await asyncio.sleep(JOIN_GATHER_S)
            await self._poll([m for m in self._waiting() if m.not_before <= self.loop.time()])

    async def _poll(self, members: list[Member]) -> None:
        if not members:
            return
        client, interval = self._clients[0], self.interval
        self.polls += 1
        if self._phase is None:
            self._phase = self.loop.time()
        for member in members:
            member.in_poll = True
        now = datetime.now(timezone.utc)
        try:
            result = await asyncio.to_thread(self.span.read, client, [m.shared for m in members], now, interval)
            outcomes: dict[SharedWait, Decision | EtelecomError] = {**result.decisions, **result.errors}
            alone = await asyncio.gather(*(self._alone(shared, now, interval) for shared in result.alone))
            outcomes.update(zip(result.alone, alone, strict=True))
        finally:
            for member in members:
                member.in_poll = False
        for member in members:
            outcome = outcomes[member.shared]
            member.polled = True
            member.not_before = self._next_tick(self.loop.time())
            if isinstance(outcome, EtelecomTransientError):  # a 429's Retry-After, as a lone wait waits it
                member.not_before = max(
                    member.not_before, self.loop.time() + (getattr(outcome, "retry_after", None) or 0.0)
                )
            if member.future is None or member.future.done():
                continue  # left, or stopped waiting at its deadline
            if isinstance(outcome, EtelecomError):
                member.future.set_exception(outcome)
            else:
                member.future.set_result(outcome)

    async def _alone(self, shared: SharedWait, now: datetime, interval: float) -> Decision | EtelecomError:
        client = await self._lanes.get()
        try:
            return await asyncio.to_thread(shared.check_alone, client, now, interval)
        except EtelecomError as error:
            return error
        finally:
            self._lanes.put_nowait(client)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """Release every wait still waiting (they go on alone), forget the poll, close its client."""
        self.closed = True
        if _POLLS.get((self.etelecom_conn_id, self.oa_id)) is self:
            del _POLLS[(self.etelecom_conn_id, self.oa_id)]
        crash = None if task.cancelled() else task.exception()
        if crash is not None:
            log.error("The shared poll %r stopped (%s: %s); its waits go on alone.", self, type(crash).__name__, crash)
        for member in self.members:
            if member.future is not None and not member.future.done():
                member.future.set_exception(SharedPollStopped(f"The shared poll of {self!r} stopped"))
        for client in self._clients:
            client.close()
