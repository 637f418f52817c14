"""The lightest load Locust can make: GET /work as fast as each user can.

Used by the benchmark to measure the load harness's own ceiling; it records no
per-request data (that would cost throughput). By hand:
  locust -f loadtests/trivial.py --host http://127.0.0.1:PORT -u 64 -r 64
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class TrivialUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def work(self) -> None:
        self.client.get("/work")
