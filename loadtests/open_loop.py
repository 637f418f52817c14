"""Open-loop arrivals: new requests at a fixed Poisson rate, whatever the server does.

A Locust user is closed-loop: it waits for its answer before its next request, so a
slow server slows its own load down and hides an overload (coordinated omission).
Here one user is a source of arrivals: it draws exponential gaps at LAB_RATE per
second and spawns one greenlet per request at its intended time, never waiting for
an answer, for LAB_ARRIVALS_S seconds; then it lets the requests in flight finish and
stops (headless, it ends the run). Each request's attempt times out after
LAB_CLIENT_TIMEOUT_S (also sent as `X-Timeout-Ms`, so a server can tell when nobody
waits any more) and is retried (tenacity) up to LAB_CLIENT_ATTEMPTS attempts in all on
a timeout, a connection error, 429 or 5xx. Optionally a retry budget or adaptive
throttling (loadtests/admission.py) decides whether a retry, or a request at all, is
sent.

Every attempt is recorded (loadtests/recorder.py): the first under "/work", a retry
under "/work (client retry)". When the engine records (it sets LAB_EVENTS_FILE), each
request also gets a row in `logical.csv` next to that file: its intended send time,
when its first attempt was really sent, when it ended, attempts, the last status and
its outcome (ok; failed: out of attempts or not retried; throttled: rejected locally;
dropped: more than LAB_MAX_IN_FLIGHT in flight; pending: the run ended first). Its
latency counts from the intended time, so a late sender cannot hide a slow server.

Environment (all optional):
  LAB_RATE               new requests per second (default 50)
  LAB_ARRIVALS_S         seconds of arrivals (default 20)
  LAB_MAX_IN_FLIGHT      requests in flight at most (default 2000)
  LAB_PATH               request path (default /work)
  LAB_CLIENT_TIMEOUT_S   one attempt's timeout (default 1.0)
  LAB_CLIENT_ATTEMPTS    attempts per request, the first included (default 1)
  LAB_CLIENT_BACKOFF_S   longest random wait before a retry (default 0: at once)
  LAB_RETRY_BUDGET       on | off (default off): gRPC A6, 10 tokens, 0.1 per success
  LAB_THROTTLE           on | off (default off): SRE adaptive throttling
  LAB_THROTTLE_K         K (default 2)
  LAB_THROTTLE_WINDOW_S  the sliding window (default 2)
  LAB_SEED               seed of the arrivals and the throttle's draws (default 1)

With Locust workers (`--locust-workers N`: the engine sets LAB_LOCUST_WORKERS and each
worker's LAB_LOCUST_WORKER) every worker runs one arrival source at LAB_RATE / N, with
LAB_MAX_IN_FLIGHT / N in flight at most and its own seed: the total is unchanged.

By hand, with the web UI (one user: it is the whole arrival process):
  locust -f loadtests/open_loop.py --host http://127.0.0.1:PORT -u 1 -r 1
"""

from __future__ import annotations

import os
import time
from dataclasses import astuple, dataclass

import gevent
import gevent.pool
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.rpc import Message
from locust.runners import MasterRunner, WorkerRunner
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_none, wait_random

from loadtests import recorder  # records every attempt for the engine
from loadtests.admission import AdaptiveThrottle, Arrivals, RetryBudget

USERS_PER_WORKER = True
"""Each Locust worker gets the lab's users (one arrival source) and a share of the rate."""
WORKERS = max(1, int(os.environ.get("LAB_LOCUST_WORKERS") or 1))
WORKER = int(os.environ.get("LAB_LOCUST_WORKER") or 0)
RATE = float(os.environ.get("LAB_RATE", "50")) / WORKERS
ARRIVALS_S = float(os.environ.get("LAB_ARRIVALS_S", "20"))
MAX_IN_FLIGHT = max(1, int(os.environ.get("LAB_MAX_IN_FLIGHT", "2000")) // WORKERS)
PATH = os.environ.get("LAB_PATH", "/work")
RETRY_NAME = f"{PATH} (client retry)"
TIMEOUT_S = float(os.environ.get("LAB_CLIENT_TIMEOUT_S", "1.0"))
ATTEMPTS = int(os.environ.get("LAB_CLIENT_ATTEMPTS", "1"))
BACKOFF_S = float(os.environ.get("LAB_CLIENT_BACKOFF_S", "0"))
SEED = int(os.environ.get("LAB_SEED", "1")) + 1000 * WORKER
BUDGET = RetryBudget() if os.environ.get("LAB_RETRY_BUDGET", "off") == "on" else None
THROTTLE = (
    AdaptiveThrottle(
        k=float(os.environ.get("LAB_THROTTLE_K", "2")),
        window_s=float(os.environ.get("LAB_THROTTLE_WINDOW_S", "2")),
        seed=SEED,
    )
    if os.environ.get("LAB_THROTTLE", "off") == "on"
    else None
)
HEADERS = {"X-Timeout-Ms": f"{TIMEOUT_S * 1000:g}"}
RETRYABLE = frozenset({0, 429, 500, 502, 503, 504})
"""0: a timeout or a connection error."""
THROTTLED = -1
"""An attempt the adaptive throttle rejected locally (never sent)."""
LOGICAL_FILE = "logical.csv"


@dataclass
class Logical:
    intended_s: float
    sent_s: float = 0.0
    end_s: float = 0.0
    attempts: int = 0
    status: int = 0
    outcome: str = "pending"


_logical: list[Logical] = []
_environment: list[Environment] = []
_done_workers: set[int] = set()
DONE_MESSAGE = "lab_arrivals_done"


class OpenLoop(FastHttpUser):
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S
    concurrency = MAX_IN_FLIGHT
    """Connections the client may open: never the bottleneck (no client-side queue)."""

    @task
    def arrive(self) -> None:
        arrivals = Arrivals(RATE, time.time(), SEED)
        end = time.time() + ARRIVALS_S
        in_flight = gevent.pool.Pool(MAX_IN_FLIGHT)
        while (intended := arrivals.next()) < end:
            gevent.sleep(max(0.0, intended - time.time()))
            record = Logical(intended)
            _logical.append(record)
            if in_flight.full():
                record.outcome = "dropped"
                continue
            in_flight.spawn(self._request, record)
        in_flight.join()
        if self.environment.parsed_options and self.environment.parsed_options.headless:
            _arrivals_done(self.environment)  # a lab's run ends here; in the web UI the user stops
        raise StopUser()

    def _request(self, record: Logical) -> None:
        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            retry=_should_retry,
            wait=wait_random(0, BACKOFF_S) if BACKOFF_S else wait_none(),
            reraise=True,
        )
        record.status = retrying(self._attempt, record)
        record.end_s = time.time()
        if record.status == THROTTLED:
            record.outcome = "throttled"
        else:
            record.outcome = "ok" if 200 <= record.status < 400 else "failed"

    def _attempt(self, record: Logical) -> int:
        now = time.time()
        if THROTTLE is not None and not THROTTLE.admit(now):
            return THROTTLED
        record.attempts += 1
        if record.attempts == 1:
            record.sent_s = now
        name = PATH if record.attempts == 1 else RETRY_NAME
        status = self.client.get(PATH, name=name, headers=HEADERS).status_code or 0
        if BUDGET is not None:
            BUDGET.record(200 <= status < 400)
        if THROTTLE is not None and status != 0 and status < 500 and status != 429:
            THROTTLE.accepted(time.time())
        return status


def _should_retry(state: RetryCallState) -> bool:
    """Retry a retryable failure while attempts are left and the budget allows it."""
    status = state.outcome.result() if state.outcome else THROTTLED
    if status not in RETRYABLE or state.attempt_number >= ATTEMPTS:
        return False
    return BUDGET is None or BUDGET.allows_retry()


@events.init.add_listener
def _keep_environment(environment: Environment, **_kw) -> None:
    _environment.append(environment)
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(DONE_MESSAGE, _worker_done)


def _arrivals_done(environment: Environment) -> None:
    """One process: stop the run. A worker: tell the master, which stops the run once
    every worker's arrivals are over (a worker that quit alone would make the master
    hand its user to another worker, which would start a schedule of its own)."""
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message(DONE_MESSAGE, WORKER)
    else:
        gevent.spawn(_stop)


def _worker_done(environment: Environment, msg: Message, **_kw) -> None:
    _done_workers.add(msg.data)
    if len(_done_workers) >= WORKERS and environment.parsed_options.headless:
        gevent.spawn(_stop)


def _stop() -> None:
    for environment in _environment:
        if environment.runner is not None:
            environment.runner.quit()


@events.quitting.add_listener
def _write_logical(**_kw) -> None:
    header = ["intended_s", "sent_s", "end_s", "attempts", "status", "outcome"]
    rows = (
        (f"{r.intended_s:.6f}", f"{r.sent_s:.6f}", f"{r.end_s:.6f}", *astuple(r)[3:])
        for r in _logical
    )
    recorder.write_csv_beside_events(LOGICAL_FILE, header, rows)
