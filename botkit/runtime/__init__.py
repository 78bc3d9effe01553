"""Running a bot: ingesting events, lanes of per-user work, turns, the dispatcher, the outbox and the worker process."""
