/*-------------------------------------------------------------------------
 *
 * procq.h
 *	  What every part of procq knows about its tables.
 *
 * The modules of procq, by layer.  Calls only go down this list, or, within
 * a layer, one way (no two files call each other):
 *
 *	entry			procq.c (module magic, _PG_init)
 *	SQL API			workflow.c, ticks.c (defer_workflow_once, through
 *					workflow.c), handlers.c, triggers.c, get_job.c (and the SQL
 *					functions of the domain files below)
 *	workers			launcher.c, worker.c, run_sql.c, run_shell.c, orphans.c,
 *					crash.c, worker_jobs.c, retention.c
 *	domain			defer.c, dependencies.c, fetch.c, finish.c, lifecycle.c,
 *					cascade.c, locks.c, workflows.c (the workflow a new job joins,
 *					which defer.c asks; and cancel_workflow, workflow_dot,
 *					parents), events.c (job history: its triggers and
 *					job_history), authz.c, jobs.c
 *	infrastructure	notify.c, shmem.c, worker_xact.c, spi_exec.c, args.c,
 *					guc.c, and the shell runner (shell.c, shell_spawn.c,
 *					shell_split.c), which uses libc only
 *
 * Each file declares the internal statements it runs next to the code that
 * runs them (see spi_exec.h), and has a header for what it exports.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_H
#define PROCQ_H

/*
 * A job is ready to be fetched when this holds over its row; the partial
 * ready indexes of procq.jobs use the same condition.
 */
#define PQ_READY_COND \
	"status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed"

/*
 * The SQLSTATEs of procq's own errors (class PQ, see README "Errors"):
 * a worker's lease on a job is lost (the job was put back, fetched again
 * or finished by someone else since the caller fetched it), or the job
 * was aborted by procq.cancel_job(abort => true).
 */
#define ERRCODE_PQ_LEASE_LOST		MAKE_SQLSTATE('P','Q','0','0','1')
#define ERRCODE_PQ_JOB_ABORTED		MAKE_SQLSTATE('P','Q','0','0','2')

/*
 * The error of a job that procq.cancel_job(abort => true) stopped: a
 * cancelled job with it was aborted while it ran.
 */
#define PQ_ABORTED_ERROR "aborted by procq.cancel_job"

/*
 * The most characters a job's task, queue, lock or queueing_lock (and a
 * handler's task) may have.  They go into btree indexes and the queue into
 * NOTIFY payloads: a longer name would fail later, in the transaction of
 * whoever makes the job ready.  255 characters are at most 1,020 bytes,
 * well within both limits.  The CHECK constraints of procq.jobs and
 * procq.handlers say the same in SQL.
 */
#define PQ_NAME_MAX_CHARS 255

/*
 * Each ready index serves one kind of fetch, and its predicate adds a
 * condition that always holds (the column is NOT NULL) but that only its
 * kind of query implies: queue IS NOT NULL for jobs_ready_queue_idx (implied
 * by queue = ...), task IS NOT NULL for jobs_ready_task_idx (by task =
 * ...), and this one, priority IS NOT NULL, for jobs_ready_idx, which a
 * query over all queues and tasks states.  So a fetch of one task can
 * never be planned as a walk of its role's part of jobs_ready_idx that
 * filters on task (reading the role's ready jobs of other tasks): with
 * statistics saying that one task has nearly all ready jobs, the planner
 * chose just that.
 */
#define PQ_READY_ALL_COND PQ_READY_COND " AND priority IS NOT NULL"

/*
 * A recursive WITH query name(role) that lists the roles that have rows
 * matching cond (then one NULL), each found by one descent of an index
 * that leads with deferred_by (a loose index scan): the ready indexes,
 * jobs_due_idx.  A superuser's fetch and the workers' claim probe only the
 * roles that have ready jobs, not every role there is.
 */
#define PQ_ROLES_WITH(name, cond) \
	name "(role) AS ((SELECT deferred_by::oid FROM procq.jobs WHERE " cond \
	"  ORDER BY deferred_by::oid LIMIT 1)" \
	" UNION ALL SELECT (SELECT j.deferred_by::oid FROM procq.jobs j WHERE " cond \
	"  AND j.deferred_by::oid > r.role ORDER BY j.deferred_by::oid LIMIT 1)" \
	" FROM " name " r WHERE r.role IS NOT NULL)"

#endif							/* PROCQ_H */
