"""Benchmarks: how fast Nudge is, side by side with what a user would build instead.

`python -m bench --size S|M|L [--db URL] --json FILE` builds a deterministic synthetic shop
(`engine.demo.shop`), imports it, and measures on the same data, in one process:

- `shop`: generating the shop's files (cached) and importing them (events per second);
- `workloads`: `simulate` of 90 days (in a child process, for its peak memory), the daemon's
  tick with nothing due and with a day's work due, due-to-recorded latency on a simulated clock,
  dispatch to a loopback SMTP server and a loopback webhook;
- the baselines: `naive` (the tests' per-customer reference evaluator), `apscheduler_jobs` (one
  APScheduler date job per rule and triggering event in its SQLAlchemy job store), `floor`
  (hand-written SQL for three representative rules against the compiled plan);
- `report`: the terminal table and the JSON file, with the machine and the git commit.

Every database the harness uses is a scratch one it creates and drops (`databases`).
"""
