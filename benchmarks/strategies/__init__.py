"""The four write strategies the coordinator benchmark compares, and what they share.

* :mod:`.naive` — read-modify-write without ETags (GET, modify, PUT, no ``If-Match``);
* :mod:`.blind_retry` — the seeds' wrong fix: one GET, then resend the same stale ETag and body
  after a fixed sleep on 409/412;
* :mod:`.refresh_retry` — client-go ``RetryOnConflict``: re-GET, re-apply, ``If-Match``,
  exponential backoff on 409/412/429, capped attempts;
* :mod:`.armguard_worker` — every intent submitted to a SQLite store, drained by the real
  :class:`armguard.coordinator.worker.Worker`.

:mod:`.workloads` defines what is written, :mod:`.scoring` reads the emulator afterwards to
count lost intents and ARM writes, :mod:`.emulator_process` serves a fresh emulator per run.
"""
