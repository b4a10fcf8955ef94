-- workflow.sql: the demo's jobs, deferred in one call (scripts/demo.sh).
-- Steps name their parents by key; defer_workflow returns the job ids, all
-- in one workflow (its id is the first job's).
--
--   extract -> transform 1, 2, 3 -> load
--   validate -> publish -> notify      (validate fails: the rest is cancelled)
--   load, validate -> alert            (run_after 'failure': runs, validate failed)
--   load -> alert_load                 (run_after 'failure': cancelled, load succeeded)
--   every other step -> cleanup        (run_after 'completion': runs once all ended)

SELECT key, job_id FROM procq.defer_workflow($$[
    {"key": "extract",   "task": "extract",   "args": {"source": "orders.csv"}},
    {"key": "transform1", "task": "transform", "args": {"part": 1}, "depends_on": ["extract"]},
    {"key": "transform2", "task": "transform", "args": {"part": 2}, "depends_on": ["extract"]},
    {"key": "transform3", "task": "transform", "args": {"part": 3}, "depends_on": ["extract"]},
    {"key": "load",      "task": "load",      "args": {"table": "orders"},
                          "depends_on": ["transform1", "transform2", "transform3"]},
    {"key": "validate",  "task": "validate",  "args": {"source": "customers.csv"}},
    {"key": "publish",   "task": "publish",   "args": {"to": "reports"}, "depends_on": ["validate"]},
    {"key": "notify",    "task": "notify",    "args": {"channel": "ops"}, "depends_on": ["publish"]},
    {"key": "alert",     "task": "alert",     "args": {"channel": "oncall"}, "run_after": "failure",
                          "depends_on": ["load", "validate"]},
    {"key": "alert_load", "task": "alert",    "args": {"channel": "oncall"}, "run_after": "failure",
                          "depends_on": ["load"]},
    {"key": "cleanup",   "task": "cleanup",   "args": {"dir": "/tmp/staging"}, "run_after": "completion",
                          "depends_on": ["load", "notify", "alert", "alert_load"]}
]$$);
