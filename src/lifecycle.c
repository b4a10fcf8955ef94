/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *	  What happens to a job after it was fetched: procq.finish_job,
 *	  retry_job, cancel_job, heartbeat, recover_stalled and parent_results,
 *	  and the same steps for the background workers.
 *
 * These functions validate their input, then change the job's row.  What
 * a change of status means for other jobs (releasing children, cancelling
 * descendants, moving a lock queue along) is done by the status trigger
 * (triggers.c), so that it happens the same way whether the API or a
 * DBA's UPDATE changed the status.  A job's lock queue advisory lock is
 * taken before its row is locked (see pq_lock_key).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "args.h"
#include "authz.h"
#include "events.h"
#include "guc.h"
#include "jobs.h"
#include "lifecycle.h"
#include "locks.h"
#include "procq.h"
#include "shmem.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_finish_job);
PG_FUNCTION_INFO_V1(procq_retry_job);
PG_FUNCTION_INFO_V1(procq_cancel_job);
PG_FUNCTION_INFO_V1(procq_heartbeat);
PG_FUNCTION_INFO_V1(procq_recover_stalled);
PG_FUNCTION_INFO_V1(procq_parent_results);
PG_FUNCTION_INFO_V1(procq_release_job);

static PQStatement stmt_lock_job = PQ_STATEMENT(
	"SELECT status::text, attempts, max_attempts, queueing_lock, error"
	" FROM procq.jobs WHERE id = $1 FOR UPDATE",
	1, INT8OID);

static PQStatement stmt_job_state = PQ_STATEMENT(
	"SELECT status::text, attempts, error FROM procq.jobs WHERE id = $1",
	1, INT8OID);

static PQStatement stmt_finish = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = $2::procq.job_status,"
	" result = $3, error = $4, lease_expires_at = NULL,"
	" finished_at = CASE WHEN $2 = 'todo' THEN NULL ELSE clock_timestamp() END,"
	" scheduled_at = CASE WHEN $2 = 'todo'"
	"   THEN clock_timestamp() + make_interval(secs => $5) ELSE scheduled_at END,"
	" delayed = ($2 = 'todo' AND $5 > 0)"
	" WHERE id = $1 RETURNING status::text",
	5, INT8OID, TEXTOID, JSONBOID, TEXTOID, FLOAT8OID);

/*
 * The common case of finish_job in one statement: a doing job without a
 * lock queue (so no advisory lock must come first), that is not going
 * back to todo ($2 is not 'failed', or no attempts are left).  Checks,
 * locks and ends it at once; when it matches no row, the general path
 * below finds out why (no such job, not ours, not doing, a lock, a retry).  The row
 * is locked FOR UPDATE first, as the general path does: that lock makes
 * the update count as a key update for concurrent FOR KEY SHARE lockers
 * (the foreign key checks of a defer naming this job as a parent), which
 * a REPEATABLE READ defer whose snapshot predates the finish must see as
 * a serialization failure (test/isolation/specs/defer_while_parent_succeeds).
 */
static PQStatement stmt_finish_plain = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = $2::procq.job_status,"
	" result = $3, error = $4, lease_expires_at = NULL,"
	" finished_at = clock_timestamp(), delayed = false"
	" WHERE id = (SELECT id FROM procq.jobs WHERE id = $1 AND status = 'doing'"
	"  AND ($5::int4 IS NULL OR attempts = $5)"
	"  AND lock IS NULL AND ($2 <> 'failed' OR attempts >= max_attempts)"
	"  AND pg_catalog.pg_has_role($6, deferred_by, 'USAGE')"
	"  FOR UPDATE)"
	" RETURNING status::text",
	6, INT8OID, TEXTOID, JSONBOID, TEXTOID, INT4OID, OIDOID);

/*
 * issue 10, stats: a doing job handed back by its worker (release_job):
 * todo at once, the attempt it ran in not counted, no longer anyone's.
 * Its error (an earlier attempt's, if any) and schedule stay; the status
 * trigger makes it ready, moves its lock queue and notifies.
 */
static PQStatement stmt_release = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'todo',"
	" attempts = greatest(attempts - 1, 0), worker = NULL, started_at = NULL,"
	" lease_expires_at = NULL, delayed = false"
	" WHERE id = $1 AND status = 'doing'",
	1, INT8OID);

static PQStatement stmt_worker_finish = PQ_STATEMENT(
	"SELECT procq.finish_job($1, $2::procq.job_status, $3, $4)",
	4, INT8OID, TEXTOID, JSONBOID, TEXTOID);

static PQStatement stmt_fail_for_good = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'failed', error = $2"
	" WHERE id = $1 AND status = 'doing'",
	2, INT8OID, TEXTOID);

static PQStatement stmt_retry = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'todo', attempts = 0, result = NULL,"
	" error = NULL, finished_at = NULL, cancelled_by = NULL,"
	" scheduled_at = $2,"
	" delayed = $2 IS NOT NULL AND $2 > statement_timestamp(),"
	" lock_blocked = lock IS NOT NULL"
	" WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING id",
	2, INT8OID, TIMESTAMPTZOID);

static PQStatement stmt_cancel = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'cancelled', finished_at = clock_timestamp(),"
	" error = 'cancelled by procq.cancel_job', lock_blocked = false,"
	" delayed = false"
	" WHERE id = $1 AND status = 'todo' RETURNING id",
	1, INT8OID);

static PQStatement stmt_abort_doing = PQ_STATEMENT(
	"UPDATE procq.jobs SET status = 'cancelled',"
	" error = 'aborted by procq.cancel_job'"
	" WHERE id = $1 AND status = 'doing' RETURNING id",
	1, INT8OID);

static PQStatement stmt_heartbeat = PQ_STATEMENT(
	"UPDATE procq.jobs"
	" SET lease_expires_at = greatest(lease_expires_at,"
	"  clock_timestamp() + make_interval(secs => $2))"
	" WHERE id = $1 AND status = 'doing' AND ($3::int4 IS NULL OR attempts = $3)"
	" RETURNING lease_expires_at",
	3, INT8OID, INT4OID, INT4OID);

static PQStatement stmt_stalled = PQ_STATEMENT(
	"SELECT id, lock, queueing_lock FROM procq.jobs"
	" WHERE status = 'doing' AND lease_expires_at < statement_timestamp()"
	" AND pg_catalog.pg_has_role($1, deferred_by, 'USAGE')"
	" ORDER BY lease_expires_at",
	1, OIDOID);

static PQStatement stmt_recover = PQ_STATEMENT(
	"WITH stalled AS (SELECT id FROM procq.jobs"
	"  WHERE id = $1 AND status = 'doing'"
	"  AND ($2 IS NOT NULL OR lease_expires_at < statement_timestamp())"
	"  AND ($3::text IS NULL OR worker = $3)"
	"  FOR UPDATE SKIP LOCKED),"
	" decided AS (SELECT j.id, j.attempts < j.max_attempts"
	"  AND NOT EXISTS (SELECT 1 FROM procq.jobs q WHERE q.status = 'todo'"
	"   AND q.queueing_lock = j.queueing_lock) AS again"
	"  FROM stalled s JOIN procq.jobs j ON j.id = s.id)"
	" UPDATE procq.jobs j SET"
	" status = CASE WHEN d.again THEN 'todo' ELSE 'failed' END::procq.job_status,"
	" finished_at = CASE WHEN d.again THEN NULL ELSE clock_timestamp() END,"
	" error = coalesce($2, format('lease expired at %s on worker %s',"
	"  j.lease_expires_at, j.worker)),"
	" lease_expires_at = NULL"
	" FROM decided d WHERE j.id = d.id RETURNING j.id",
	3, INT8OID, TEXTOID, TEXTOID);

static PQStatement stmt_parent_results = PQ_STATEMENT(
	"SELECT coalesce(jsonb_object_agg(p.id::text, p.result), '{}')"
	" FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE d.job_id = $1",
	1, INT8OID);

/*
 * issue 9, workflows: the same keyed by the parents' step_key, a parent
 * without one by its id; of parents with the same key, the one with the
 * highest id counts (its key comes last).
 */
static PQStatement stmt_parent_results_by_key = PQ_STATEMENT(
	"SELECT coalesce(jsonb_object_agg(coalesce(p.step_key, p.id::text), p.result"
	"  ORDER BY p.id), '{}')"
	" FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE d.job_id = $1",
	1, INT8OID);

/*
 * lock_queue_of takes the advisory lock of the job's lock queue, if it
 * has a lock, before the caller locks the job's row: the status trigger
 * will move that queue along, and that lock must come first (pq_lock_key).
 * Raises an error when the job does not exist, or when the current user
 * may not act on it (authz.c).
 */
static void
lock_queue_of(int64 job_id)
{
	PQJobInfo	info;

	if (!pq_job_lookup(job_id, &info))
		pq_job_not_found(job_id);
	pq_require_job_access(job_id, info.deferred_by);
	if (info.lock != NULL)
		pq_lock_key(info.lock);
}

/*
 * requeue_held_by says whether a doing job with queueing lock qlock (NULL:
 * none) may go back to todo: it returns the id of the todo job that holds
 * qlock (at most one todo job per value), or 0 when none does.  It takes
 * the queueing lock's procq lock, so that the answer holds until the end
 * of the transaction.  finish_job's retry and release_job ask it; the
 * caller has locked the job's row.
 */
static int64
requeue_held_by(const char *qlock)
{
	if (qlock == NULL)
		return 0;
	pq_lock_queueing_key(qlock, false);
	return pq_queueing_lock_holder(qlock);
}

/*
 * pq_retry_delay_seconds is the backoff before the attempt that follows
 * attempt number attempts: procq.retry_delay doubled per attempt made,
 * at most procq.retry_delay_max.  (finish_jobs and the background workers
 * use it too.)  A delay of 0 stays 0 however many attempts were made, and
 * the doubling stops once it passes the maximum: 2^(attempts - 1) is
 * infinite in a double from 1,025 attempts on, and 0 x infinity is not 0.
 */
double
pq_retry_delay_seconds(int attempts)
{
	double		delay = pq_retry_delay;
	int			doublings = Max(attempts - 1, 0);

	if (pq_retry_delay <= 0 || pq_retry_delay_max <= 0)
		return 0;
	while (doublings-- > 0 && delay < pq_retry_delay_max)
		delay *= 2;
	return Min(delay, (double) pq_retry_delay_max);
}

/*
 * pq_job_runs_in says whether a job with status and attempts is running in
 * the caller's attempt: it is doing, and in that attempt when the caller
 * gave one (attempt NULL: any).
 */
bool
pq_job_runs_in(const char *status, int32 attempts, const PQAttempt *attempt)
{
	return strcmp(status, "doing") == 0 &&
		(!attempt->given || attempts == attempt->value);
}

/*
 * pq_refuse_not_running raises the error for a job the caller may not
 * finish (or heartbeat, or release: act) because it does not run in the
 * caller's attempt (pq_job_runs_in is false); status, attempts and error
 * are the job's.  The fencing of stale workers:
 *
 *	- a job that procq.cancel_job(abort => true) stopped, in the caller's
 *	  attempt (or the caller gave none): PQ002;
 *	- else, when the caller gave its attempt: PQ001, its lease is lost: the
 *	  job was put back (recover_stalled), fetched again, or finished by
 *	  someone else since;
 *	- else 55000, as without fencing.
 *
 * In a batch, the detail says that no job of the batch was finished.
 */
void
pq_refuse_not_running(int64 job_id, const char *status, int32 attempts,
					  const char *error, const PQAttempt *attempt,
					  PQRunningAct act, bool batch)
{
	const char *none = batch ? " No job of the batch was finished." : "";

	if (strcmp(status, "cancelled") == 0 && error != NULL &&
		strcmp(error, PQ_ABORTED_ERROR) == 0 &&
		(!attempt->given || attempts == attempt->value))
		ereport(ERROR,
				(errcode(ERRCODE_PQ_JOB_ABORTED),
				 errmsg("job %lld was aborted", (long long) job_id),
				 errdetail("procq.cancel_job(abort => true) stopped it while it ran.%s", none),
				 errhint("Stop working on the job and roll back what it did.")));
	if (attempt->given && strcmp(status, "doing") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PQ_LEASE_LOST),
				 errmsg("job %lld is no longer running in attempt %d",
						(long long) job_id, attempt->value),
				 errdetail("It was fetched again and runs in attempt %d now.%s",
						   attempts, none),
				 errhint("Stop working on the job: its lease is lost.")));
	if (attempt->given)
		ereport(ERROR,
				(errcode(ERRCODE_PQ_LEASE_LOST),
				 errmsg("job %lld is no longer running in attempt %d",
						(long long) job_id, attempt->value),
				 errdetail("Its status is %s (attempt %d): it was put back, failed or "
						   "finished since that attempt was fetched.%s",
						   status, attempts, none),
				 errhint("Stop working on the job: its lease is lost.")));
	if (act == PQ_ACT_HEARTBEAT)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld is not running", (long long) job_id),
				 errdetail("Its status is %s; only a doing job has a lease.", status)));
	if (act == PQ_ACT_RELEASE)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld is not running", (long long) job_id),
				 errdetail("Its status is %s; only a doing job can be released.", status)));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("job %lld is not running", (long long) job_id),
			 errdetail("Its status is %s; only a doing job can be finished.%s",
					   status, none)));
}

/*
 * pq_get_attempt reads the optional attempt argument argno of a function.
 */
PQAttempt
pq_get_attempt(FunctionCallInfo fcinfo, int argno)
{
	PQAttempt	attempt = {false, 0};

	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
	{
		attempt.given = true;
		attempt.value = PG_GETARG_INT32(argno);
	}
	return attempt;
}

/*
 * pq_check_finish_status rejects a status a job cannot be finished with,
 * and a result for a job that did not succeed: the argument checks of
 * finish_job and finish_jobs.
 */
void
pq_check_finish_status(const char *status, bool has_result)
{
	if (strcmp(status, "succeeded") != 0 && strcmp(status, "failed") != 0 &&
		strcmp(status, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a job cannot be finished with status %s", status),
				 errhint("Use succeeded, failed or cancelled.")));
	if (has_result && strcmp(status, "succeeded") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("only a succeeded job can have a result"),
				 errhint("Describe a failure in error instead.")));
}

/*
 * procq.finish_job(job_id, status, result, error, attempt) returns
 * procq.job_status
 *
 * Ends a doing job.  'failed' goes back to todo, after a backoff, while the
 * job has attempts left (and no other job waits with its queueing_lock);
 * the status trigger then does what the new status means for dependents.
 * With attempt (the attempts of the row the caller fetched), only a job
 * still doing in that attempt is ended (pq_refuse_not_running).
 */
Datum
procq_finish_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	char	   *status;
	char	   *current;
	int32		attempts;
	int32		max_attempts;
	char	   *error;
	const char *new_status;
	double		delay = 0;
	Datum		v[6];
	char		n[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		ended;
	PQAttempt	attempt;

	pq_require_arg(fcinfo, 0, "job_id");
	pq_require_arg(fcinfo, 1, "status");
	job_id = PG_GETARG_INT64(0);
	attempt = pq_get_attempt(fcinfo, 4);
	status = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(1)));
	error = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	pq_check_finish_status(status, !PG_ARGISNULL(2));

	pq_connect();

	v[0] = Int64GetDatum(job_id);
	v[1] = CStringGetTextDatum(status);
	v[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	n[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	v[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	n[3] = error ? ' ' : 'n';
	v[4] = Int32GetDatum(attempt.value);
	n[4] = attempt.given ? ' ' : 'n';
	v[5] = ObjectIdGetDatum(GetUserId());
	n[5] = ' ';
	if (pq_exec(&stmt_finish_plain, v, n, 1) == 1)
	{
		ended = DirectFunctionCall2(enum_in, CStringGetDatum(pq_get_text(0, 1)),
									ObjectIdGetDatum(get_fn_expr_rettype(fcinfo->flinfo)));
		pq_finish();
		PG_RETURN_DATUM(ended);
	}

	lock_queue_of(job_id);
	if (pq_exec(&stmt_lock_job, v, NULL, 1) == 0)
		pq_job_not_found(job_id);
	current = pq_get_text(0, 1);
	attempts = DatumGetInt32(pq_get_attr(0, 2, &isnull));
	max_attempts = DatumGetInt32(pq_get_attr(0, 3, &isnull));
	if (!pq_job_runs_in(current, attempts, &attempt))
		pq_refuse_not_running(job_id, current, attempts, pq_get_text(0, 5),
							  &attempt, PQ_ACT_FINISH, false);

	new_status = status;
	if (strcmp(status, "failed") == 0 && attempts < max_attempts)
	{
		char	   *qlock = pq_get_text(0, 4);
		int64		holder = requeue_held_by(qlock);

		if (holder != 0)
			error = psprintf("%s (not retried: job %lld already waits with queueing_lock \"%s\")",
							 error ? error : "failed", (long long) holder, qlock);
		else
		{
			new_status = "todo";
			delay = pq_retry_delay_seconds(attempts);
		}
	}

	v[0] = Int64GetDatum(job_id);
	v[1] = CStringGetTextDatum(new_status);
	v[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	n[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	v[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	n[3] = error ? ' ' : 'n';
	v[4] = Float8GetDatum(delay);
	n[4] = ' ';
	pq_exec(&stmt_finish, v, n, 1);

	ended = DirectFunctionCall2(enum_in, CStringGetDatum(pq_get_text(0, 1)),
								ObjectIdGetDatum(get_fn_expr_rettype(fcinfo->flinfo)));
	pq_finish();
	PG_RETURN_DATUM(ended);
}

/*
 * procq.release_job(job_id, attempt) returns procq.job_status
 *
 * An external worker that stops (a deploy's SIGTERM) hands back a doing
 * job it has not finished: the job goes back to todo at once, without
 * using up an attempt (attempts goes back down by one), with no worker,
 * start or lease, and no error stored; its children keep waiting.  It is
 * ready again unless its lock queue holds it: a job with a lock keeps its
 * place (the lowest todo id of its queue heads it, as after finish_job's
 * retry), and the status trigger notifies its queue when it is ready.
 *
 * Errors as finish_job's: P0002, 42501, 55000 when it is not doing
 * (without attempt), PQ001 when attempt is no longer current, PQ002 when
 * it was aborted.  A job a background worker runs is 55000: that worker
 * is running it now (a shell program), and putting it back would let
 * another worker run it beside; cancel_job(abort => true) stops it.
 *
 * Another todo job may have taken the job's queueing_lock while it ran
 * (at most one todo job per value): the job cannot go back to todo, and
 * it ends failed, with an error saying so, as finish_job's retry does in
 * that case (never silently gone; retry_job requeues it once that other
 * job has started).  It returns the status the job is left in, todo or
 * failed, so that a stopping worker can tell the two apart.
 */
Datum
procq_release_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	PQAttempt	attempt;
	Datum		v[5];
	char		n[5] = {' ', ' ', 'n', ' ', ' '};
	bool		isnull;
	char	   *current;
	int32		attempts;
	char	   *qlock;
	int64		holder;
	Datum		left;

	pq_require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	attempt = pq_get_attempt(fcinfo, 1);

	pq_connect();
	lock_queue_of(job_id);
	v[0] = Int64GetDatum(job_id);
	if (pq_exec(&stmt_lock_job, v, NULL, 1) == 0)
		pq_job_not_found(job_id);
	current = pq_get_text(0, 1);
	attempts = DatumGetInt32(pq_get_attr(0, 2, &isnull));
	qlock = pq_get_text(0, 4);
	if (!pq_job_runs_in(current, attempts, &attempt))
		pq_refuse_not_running(job_id, current, attempts, pq_get_text(0, 5),
							  &attempt, PQ_ACT_RELEASE, false);
	if (pq_worker_runs_job(job_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld is run by a procq background worker", (long long) job_id),
				 errdetail("Only the worker that runs a job can hand it back."),
				 errhint("Use procq.cancel_job(job_id, abort => true) to stop it.")));

	holder = requeue_held_by(qlock);
	if (holder == 0)
	{
		v[0] = Int64GetDatum(job_id);
		if (pq_exec(&stmt_release, v, NULL, 0) != 1)
			elog(ERROR, "procq: release_job did not update the job it locked");
	}
	else
	{
		v[0] = Int64GetDatum(job_id);
		v[1] = CStringGetTextDatum("failed");
		v[2] = (Datum) 0;
		v[3] = CStringGetTextDatum(psprintf("released by procq.release_job but not requeued: job %lld already waits with queueing_lock \"%s\"",
											(long long) holder, qlock));
		v[4] = Float8GetDatum(0);
		pq_exec(&stmt_finish, v, n, 1);
	}
	left = DirectFunctionCall2(enum_in, CStringGetDatum(holder == 0 ? "todo" : "failed"),
							   ObjectIdGetDatum(get_fn_expr_rettype(fcinfo->flinfo)));
	pq_finish();
	PG_RETURN_DATUM(left);
}

/*
 * pq_worker_finish records the outcome of a background worker's job
 * through procq.finish_job, which also schedules a retry when a failed job
 * has attempts left.  The caller has connected SPI.
 */
void
pq_worker_finish(int64 job_id, const char *status, Datum result,
				 bool result_null, const char *error)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', result_null ? 'n' : ' ', error ? ' ' : 'n'};

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = result;
	values[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	(void) pq_exec(&stmt_worker_finish, values, nulls, 1);
}

/*
 * pq_fail_for_good fails a doing job without a retry, whatever attempts
 * it has left.
 */
void
pq_fail_for_good(int64 job_id, const char *error)
{
	Datum		v[2] = {Int64GetDatum(job_id), CStringGetTextDatum(error)};

	(void) pq_exec(&stmt_fail_for_good, v, NULL, 0);
}

/*
 * check_retry_allowed raises an error when a job may not be retried now:
 * it is not failed or cancelled, a parent of it failed or was cancelled
 * (that parent must be retried instead; 'success' jobs only), it is a
 * 'failure' job whose parents all succeeded, or another todo job holds its
 * queueing_lock.  current and qlock are the job's status and queueing
 * lock, read with its row locked.
 */
static void
check_retry_allowed(int64 job_id, const char *current, const char *qlock)
{
	int64		parent;
	char	   *parent_status;
	int64		holder;

	if (strcmp(current, "failed") != 0 && strcmp(current, "cancelled") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot be retried", (long long) job_id),
				 errdetail("Its status is %s; only failed or cancelled jobs can be retried.",
						   current)));
	if (pq_job_failed_parent(job_id, &parent, &parent_status))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot be retried while its parent job %lld is %s",
						(long long) job_id, (long long) parent, parent_status),
				 errhint("Retry job %lld instead: that requeues its cancelled descendants too.",
						 (long long) parent)));
	if (pq_job_not_needed(job_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job %lld cannot be retried: all its parents succeeded", (long long) job_id),
				 errdetail("Its run_after is 'failure': it runs only after one of its parents ended without success.")));
	if (qlock == NULL)
		return;
	pq_lock_queueing_key(qlock, false);
	holder = pq_queueing_lock_holder(qlock);
	if (holder != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("a todo job with queueing_lock \"%s\" already exists", qlock),
				 errdetail("Job %lld holds that queueing_lock.", (long long) holder)));
}

/*
 * procq.retry_job(job_id, scheduled_at) returns void
 *
 * Puts a failed or cancelled job back to todo with a fresh set of
 * attempts; the status trigger requeues the descendants that were
 * cancelled because of it.  Refused when a parent of the job itself failed
 * or was cancelled (the trigger refuses a DBA's UPDATE in that case too).
 */
Datum
procq_retry_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Datum		v[2];
	char		n[2] = {' ', ' '};

	pq_require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);

	pq_connect();

	lock_queue_of(job_id);
	v[0] = Int64GetDatum(job_id);
	if (pq_exec(&stmt_lock_job, v, NULL, 1) == 0)
		pq_job_not_found(job_id);
	check_retry_allowed(job_id, pq_get_text(0, 1), pq_get_text(0, 4));

	v[0] = Int64GetDatum(job_id);
	v[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	n[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	pq_exec(&stmt_retry, v, n, 1);

	pq_finish();
	PG_RETURN_VOID();
}

/*
 * abort_by_worker asks the background worker that runs job_id to abort
 * it (pq_abort_running_job).  Returns false when no worker runs it;
 * otherwise true, with in *answer what cancel_job returns: true when the
 * worker will end the job cancelled, false when it is already ending it
 * otherwise.
 */
static bool
abort_by_worker(int64 job_id, bool *answer)
{
	switch (pq_abort_running_job(job_id))
	{
		case PQ_ABORT_REQUESTED:
			*answer = true;
			return true;
		case PQ_ABORT_TOO_LATE:
			*answer = false;
			return true;
		case PQ_ABORT_NOT_RUNNING:
			break;
	}
	return false;
}

/*
 * procq.cancel_job(job_id, abort) returns boolean
 *
 * Cancels a todo job (the status trigger cancels its waiting descendants).
 * With abort, also stops a job that is running: a background worker
 * running it is told to stop it (kill a shell job's process group, cancel
 * a SQL job's statement) and ends it cancelled, even when the request
 * comes after the handler's statement or program ended; a job an external
 * worker runs is marked cancelled at once, and its worker's finish_job
 * will fail.  Returns false when there was nothing to cancel, or when the
 * worker had already decided how the job ends (see shmem.c): true means
 * the job ends cancelled.
 */
Datum
procq_cancel_job(PG_FUNCTION_ARGS)
{
	int64		job_id;
	bool		abort;
	Datum		v[1];
	bool		cancelled;

	pq_require_arg(fcinfo, 0, "job_id");
	pq_require_arg(fcinfo, 1, "abort");
	job_id = PG_GETARG_INT64(0);
	abort = PG_GETARG_BOOL(1);

	pq_connect();
	pq_require_job_access_by_id(job_id);
	pq_finish();

	/*
	 * A background worker runs it: with abort, the worker ends it; without,
	 * there is nothing to cancel (and its row stays locked until the
	 * worker's batch commits: do not wait for that).
	 */
	if (abort && abort_by_worker(job_id, &cancelled))
		PG_RETURN_BOOL(cancelled);
	if (!abort && pq_worker_runs_job(job_id))
		PG_RETURN_BOOL(false);

	pq_connect();
	lock_queue_of(job_id);
	v[0] = Int64GetDatum(job_id);
	cancelled = pq_exec(&stmt_cancel, v, NULL, 1) == 1;

	/*
	 * Not todo (any fetch of it that was under way has committed by now):
	 * a background worker that fetched it meanwhile shows it in its slot
	 * (a worker names the job there before its fetch commits), and must be
	 * asked, or it would run the job marked cancelled.  Else an external
	 * worker runs it, and it is marked cancelled.
	 */
	if (!cancelled && abort && !abort_by_worker(job_id, &cancelled))
		cancelled = pq_exec(&stmt_abort_doing, v, NULL, 1) == 1;
	pq_finish();

	PG_RETURN_BOOL(cancelled);
}

/*
 * procq.heartbeat(job_id, attempt) returns timestamptz
 *
 * Extends the lease of a doing job to procq.lease_duration from now, and
 * returns when it will run out.  With attempt, only while the job is
 * doing in that attempt (pq_refuse_not_running).  It never shortens a lease: anyone may SET
 * procq.lease_duration, and a background worker's shell job is leased for
 * longer than any timeout (the workers recover the jobs of dead workers
 * themselves), so a short lease would let recover_stalled put the job
 * back while it still runs, and another worker run it a second time.  A
 * heartbeat on such a job (say from its own program, through
 * PROCQ_JOB_ID) is accepted and leaves the lease as it is: refusing it
 * would only break programs that work with external workers too.
 */
Datum
procq_heartbeat(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};
	bool		isnull;
	TimestampTz expires;
	PQAttempt	attempt;

	pq_require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	attempt = pq_get_attempt(fcinfo, 1);

	pq_connect();
	pq_require_job_access_by_id(job_id);
	v[0] = Int64GetDatum(job_id);
	v[1] = Int32GetDatum(pq_lease_duration);
	v[2] = Int32GetDatum(attempt.value);
	n[2] = attempt.given ? ' ' : 'n';
	if (pq_exec(&stmt_heartbeat, v, n, 1) == 0)
	{
		if (pq_exec(&stmt_job_state, v, NULL, 1) == 0)
			pq_job_not_found(job_id);
		pq_refuse_not_running(job_id, pq_get_text(0, 1),
							  DatumGetInt32(pq_get_attr(0, 2, &isnull)),
							  pq_get_text(0, 3), &attempt, PQ_ACT_HEARTBEAT, false);
	}
	expires = DatumGetTimestampTz(pq_get_attr(0, 1, &isnull));
	pq_finish();

	PG_RETURN_TIMESTAMPTZ(expires);
}

/*
 * pq_recover_job puts one doing job back to todo, or to failed when it has
 * no attempts left (or another todo job holds its queueing_lock).  With
 * error NULL only if its lease ran out, recording when; otherwise with
 * that error, and only if it still names worker (when not NULL).  A job
 * being finished right now is skipped.  Returns 1 if it was recovered.
 * The caller holds the advisory locks of its lock queue and queueing lock.
 */
int
pq_recover_job(int64 job_id, const char *error, const char *worker)
{
	Datum		v[3];
	char		n[3] = {' ', error ? ' ' : 'n', worker ? ' ' : 'n'};

	v[0] = Int64GetDatum(job_id);
	v[1] = error ? CStringGetTextDatum(error) : (Datum) 0;
	v[2] = worker ? CStringGetTextDatum(worker) : (Datum) 0;
	return pq_events_run_as(PQ_EVENT_STALLED, &stmt_recover, v, n);
}

/*
 * pq_recover_stalled_jobs recovers every doing job whose lease ran out
 * and that the current user may act on (a superuser, or a background
 * worker: all),
 * skipping those whose lock queue or queueing lock another transaction is
 * changing (the next call takes them), and returns how many.  The caller
 * has connected SPI.
 */
int
pq_recover_stalled_jobs(void)
{
	int			recovered = 0;
	int			nstalled;
	int64	   *ids;
	char	  **locks;
	char	  **qlocks;
	Datum		v[1] = {ObjectIdGetDatum(GetUserId())};

	nstalled = pq_exec(&stmt_stalled, v, NULL, 0);
	ids = palloc(sizeof(int64) * Max(nstalled, 1));
	locks = palloc(sizeof(char *) * Max(nstalled, 1));
	qlocks = palloc(sizeof(char *) * Max(nstalled, 1));
	for (int i = 0; i < nstalled; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		locks[i] = pq_get_text(i, 2);
		qlocks[i] = pq_get_text(i, 3);
	}

	for (int i = 0; i < nstalled; i++)
	{
		if (locks[i] != NULL && !pq_try_lock_key(locks[i], true))
			continue;
		if (qlocks[i] != NULL && !pq_lock_queueing_key(qlocks[i], true))
			continue;
		recovered += pq_recover_job(ids[i], NULL, NULL);
	}
	return recovered;
}

/*
 * procq.recover_stalled() returns integer
 *
 * Doing jobs whose lease ran out (their worker died or hangs) go back to
 * todo, or to failed when they have no attempts left.  Jobs being finished
 * right now, and jobs whose lock queue another transaction is changing,
 * are skipped rather than waited for: the next call takes them.
 */
Datum
procq_recover_stalled(PG_FUNCTION_ARGS)
{
	int			recovered;

	pq_connect();
	recovered = pq_recover_stalled_jobs();
	pq_finish();
	PG_RETURN_INT32(recovered);
}

/*
 * procq.parent_results(job_id, by_key) returns jsonb
 *
 * The results of the job's parents as one object keyed by parent id, so
 * that a child can use what its parents produced; with by_key, keyed by
 * their step_key (issue 9; procq 1.0's declaration has no by_key).
 */
Datum
procq_parent_results(PG_FUNCTION_ARGS)
{
	int64		job_id;
	Datum		v[1];
	bool		isnull;
	Datum		results;

	bool		by_key = false;

	pq_require_arg(fcinfo, 0, "job_id");
	job_id = PG_GETARG_INT64(0);
	if (PG_NARGS() > 1)
	{
		pq_require_arg(fcinfo, 1, "by_key");
		by_key = PG_GETARG_BOOL(1);
	}

	pq_connect();
	pq_require_job_access_by_id(job_id);
	pq_require_parents_access(job_id);
	v[0] = Int64GetDatum(job_id);
	pq_exec(by_key ? &stmt_parent_results_by_key : &stmt_parent_results, v, NULL, 1);
	results = SPI_datumTransfer(pq_get_attr(0, 1, &isnull), false, -1);
	pq_finish();

	PG_RETURN_DATUM(results);
}
