"""Retries of the gateway's calls to a downstream: when to retry, how long to wait, when to stop.

policy     RetryPolicy, the strategies: one downstream's retry settings
outcome    Outcome: what one attempt produced, its label, its Retry-After
retryable  which failed attempts are worth repeating, which requests are safe to repeat
waits      the backoff strategies as tenacity waits (make_wait)
budget     RetryBudget: a process-wide cap on retries as a share of recent traffic
stats      AttemptStats: counters over every call of a downstream
call       call_with_retries: one logical request across its attempts
"""
