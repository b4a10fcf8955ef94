/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Every procq.* setting: its variable, default, bounds and reload level.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "guc.h"

/* procq.lease_duration: seconds a fetched job is leased to its worker. */
int			pq_lease_duration = 300;

/* procq.retry_delay: base of the exponential backoff between attempts. */
int			pq_retry_delay = 10;

/* procq.retry_delay_max: upper bound of that backoff. */
int			pq_retry_delay_max = 3600;

/* procq.database: where the background workers run (preloading only). */
char	   *pq_database = NULL;

/* procq.workers: how many background workers the launcher keeps running. */
int			pq_workers = 2;

/* procq.batch_size: most SQL jobs a worker runs in one transaction. */
int			pq_batch_size = 10;

/* procq.poll_interval: milliseconds an idle worker sleeps at most. */
int			pq_poll_interval = 1000;

/* procq.enable_shell: whether the workers run shell handlers. */
bool		pq_enable_shell = false;

/* procq.shell_output_limit: kB of a shell job's stdout kept as its result. */
int			pq_shell_output_limit = 1024;

/*
 * procq.worker_lock_timeout: milliseconds a background worker waits for a
 * lock in its own statements (0: forever); its lock_timeout outside
 * handlers.
 */
int			pq_worker_lock_timeout = 60000;

/* procq.retention: seconds after which the workers delete finished jobs (0: never). */
int			pq_retention = 0;

/*
 * procq.record_events: whether changes of status are written to
 * procq.job_events.  PGC_SUSET: the history is the DBA's record of what
 * happened to every role's jobs, so an ordinary role must not switch it off
 * for its own session and hide its jobs' history; a superuser may switch it
 * off for speed per system, database, role or session (ALTER SYSTEM,
 * ALTER DATABASE ... SET, ALTER ROLE ... SET, SET).
 */
bool		pq_record_events = true;

/*
 * pq_guc_init defines procq's settings.  procq.database is only defined
 * while preloading: only then are there workers to point at a database.
 */
void
pq_guc_init(void)
{
	DefineCustomIntVariable("procq.lease_duration",
							"How long a fetched job is leased to its worker.",
							"A doing job whose lease ran out is put back by "
							"procq.recover_stalled(); procq.heartbeat() extends it.",
							&pq_lease_duration,
							300, 1, INT_MAX / 2,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("procq.retry_delay",
							"Delay before the second attempt of a failed job.",
							"Each further attempt waits twice as long, up to "
							"procq.retry_delay_max.",
							&pq_retry_delay,
							10, 0, INT_MAX / 2,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("procq.retry_delay_max",
							"Upper bound of the delay between attempts.",
							NULL,
							&pq_retry_delay_max,
							3600, 0, INT_MAX / 2,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("procq.workers",
							"Number of procq background workers.",
							"Each is a background worker: max_worker_processes must leave room "
							"for them and the launcher. 0 stops them. Reloadable.",
							&pq_workers, 2, 0, PQ_MAX_WORKERS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("procq.batch_size",
							"Most SQL jobs a worker runs in one transaction.",
							"Each job runs in its own subtransaction; the commit is shared. Reloadable.",
							&pq_batch_size, 10, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("procq.poll_interval",
							"How long an idle worker sleeps before looking for jobs again.",
							"Workers are woken at once when a job becomes ready; this is the "
							"safety net, and the pace for jobs scheduled for later. Reloadable.",
							&pq_poll_interval, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("procq.enable_shell",
							 "Whether the workers run jobs of shell handlers.",
							 "Off by default. Reloadable.",
							 &pq_enable_shell, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("procq.shell_output_limit",
							"Most standard output of a shell job kept as its result.",
							"Output beyond it is read and discarded. Reloadable.",
							&pq_shell_output_limit, 1024, 1, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);

	DefineCustomBoolVariable("procq.record_events",
							 "Whether changes of job status are recorded in procq.job_events.",
							 "One row per change, written once per statement. Only superusers "
							 "may change it (per system, database, role or session).",
							 &pq_record_events, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("procq.worker_lock_timeout",
							"Longest a background worker waits for a lock in its own statements.",
							"The workers' lock_timeout outside handlers (recording outcomes, "
							"recovering jobs): a timeout rolls the batch back, and it runs "
							"again later. Handlers keep the server's lock_timeout. "
							"0 waits forever. Reloadable.",
							&pq_worker_lock_timeout, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("procq.retention",
							"Age after which the background workers delete finished jobs.",
							"Succeeded, failed and cancelled jobs that finished longer ago than "
							"this, and that no job depends on, are deleted in small batches "
							"(see procq.purge). 0 keeps every job. Reloadable.",
							&pq_retention, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("procq.database",
								   "Database in which the procq background workers run jobs.",
								   "procq must be installed there. Needs a restart.",
								   &pq_database, "postgres",
								   PGC_POSTMASTER, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("procq");
}
