"""How steps that call S3, Acoustic Connect or SFTP retry: transient errors only.

A step retries an unexpected error (a dropped connection, a throttled or failing endpoint) with
exponential backoff and jitter, so parallel runs do not retry in step. Domain errors — bad
data, bad settings, a refused quota — are raised as `dg.Failure(allow_retries=False)` and fail
at once.
"""

import dagster as dg

#: Up to 3 retries after about 30 s, 60 s and 120 s (each ± jitter).
TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
