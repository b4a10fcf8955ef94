/*-------------------------------------------------------------------------
 *
 * procq.c
 *	  Module entry point, settings, and the executor for procq's internal
 *	  statements.
 *
 * Every statement procq runs on its own tables is listed here once, with
 * its parameter types, and prepared on first use with SPI_keepplan.  They
 * all go through pq_exec(), which
 *
 *	- runs them as the owner of procq.jobs, so that application roles need
 *	  EXECUTE on the API functions but no privileges on the tables, and
 *	- gives each a fresh snapshot, so that the bookkeeping sees rows that
 *	  concurrent transactions committed while we waited for a row lock (in
 *	  READ COMMITTED that is what SPI would do anyway; in REPEATABLE READ
 *	  the transaction snapshot would be stale, and the bookkeeping must
 *	  never act on a stale view).  There, PostgreSQL may still refuse a
 *	  change with a serialization failure, which the caller retries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "procq.h"

PG_MODULE_MAGIC;

/* procq.lease_duration: seconds a fetched job is leased to its worker. */
int			pq_lease_duration = 300;

/* procq.retry_delay: base of the exponential backoff between attempts. */
int			pq_retry_delay = 10;

/* procq.retry_delay_max: upper bound of that backoff. */
int			pq_retry_delay_max = 3600;

/*
 * First keys of procq's advisory locks: PQ_ADVISORY_CLASS for a lock queue
 * (pq_lock_key), the next one for a queueing lock (pq_lock_queueing_key);
 * the second key is a hash of the value.  "proq" in ASCII.
 */
#define PQ_ADVISORY_CLASS 1886547825

/* The search_path of every internal statement, as the install script pins. */
#define PQ_SEARCH_PATH "pg_catalog, pg_temp"

/* A job is ready to be fetched when this holds. */
#define READY_COND \
	"status = 'todo' AND pending_parents = 0 AND NOT lock_blocked AND NOT delayed"

/* The UPDATE that takes the best ready job, completed by a queue filter. */
#define FETCH_PREFIX \
	"UPDATE procq.jobs SET status = 'doing', attempts = attempts + 1," \
	" started_at = clock_timestamp(), finished_at = NULL," \
	" worker = coalesce($1, 'backend ' || pg_backend_pid())," \
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)" \
	" WHERE id = (SELECT id FROM procq.jobs WHERE " READY_COND
#define FETCH_SUFFIX \
	" ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *"

typedef struct PQStmtDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[14];
} PQStmtDef;

/*
 * The SQL text and parameter types of every internal statement, indexed by
 * PQStmt.  Keep this in the order of the enum in procq.h.
 */
static const PQStmtDef pq_stmt_defs[PQ_NUM_STMTS] = {
	[PQ_LOCK_PARENTS] = {
		"SELECT id, status::text FROM procq.jobs WHERE id = ANY($1)"
		" ORDER BY id FOR SHARE",
		1, {INT8ARRAYOID}
	},
	[PQ_LOCK_QUEUE_BUSY] = {
		"SELECT EXISTS (SELECT 1 FROM procq.jobs"
		" WHERE lock = $1 AND status IN ('todo', 'doing'))",
		1, {TEXTOID}
	},
	[PQ_INSERT_JOB] = {
		"INSERT INTO procq.jobs (queue, task, args, status, priority,"
		" scheduled_at, max_attempts, lock, queueing_lock, pending_parents,"
		" lock_blocked, delayed, cancelled_by, error, finished_at, deferred_by)"
		" VALUES ($1, $2, $3, $4::procq.job_status, $5, $6, $7, $8, $9, $10,"
		" $11 AND $4 = 'todo',"
		" $4 = 'todo' AND $6 IS NOT NULL AND $6 > statement_timestamp(),"
		" $12, $13, CASE WHEN $4 = 'todo' THEN NULL ELSE clock_timestamp() END,"
		" $14)"
		" ON CONFLICT (queueing_lock)"
		" WHERE status = 'todo' AND queueing_lock IS NOT NULL DO NOTHING"
		" RETURNING id, " READY_COND,
		14, {TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, TIMESTAMPTZOID,
		INT4OID, TEXTOID, TEXTOID, INT4OID, BOOLOID, INT8OID, TEXTOID, REGROLEOID}
	},
	[PQ_INSERT_DEPS] = {
		"INSERT INTO procq.job_dependencies (job_id, depends_on)"
		" SELECT $1, p FROM unnest($2::bigint[]) AS p",
		2, {INT8OID, INT8ARRAYOID}
	},
	[PQ_QUEUEING_LOCK_HOLDER] = {
		"SELECT id FROM procq.jobs WHERE queueing_lock = $1 AND status = 'todo'",
		1, {TEXTOID}
	},
	[PQ_PROMOTE_DUE] = {
		"WITH due AS (SELECT id FROM procq.jobs"
		"  WHERE status = 'todo' AND delayed"
		"  AND scheduled_at <= statement_timestamp()"
		"  ORDER BY scheduled_at LIMIT 10 FOR UPDATE SKIP LOCKED)"
		" UPDATE procq.jobs j SET delayed = false FROM due WHERE j.id = due.id"
		" RETURNING j.queue, j.pending_parents = 0 AND NOT j.lock_blocked",
		0, {InvalidOid}
	},
	[PQ_FETCH_ANY] = {
		FETCH_PREFIX FETCH_SUFFIX,
		2, {TEXTOID, INT4OID}
	},
	[PQ_FETCH_ONE_QUEUE] = {
		FETCH_PREFIX " AND queue = $3" FETCH_SUFFIX,
		3, {TEXTOID, INT4OID, TEXTOID}
	},
	[PQ_QUEUES_BY_READINESS] = {
		/* queues of $1 with ready jobs, best job first */
		"SELECT q.name FROM (SELECT DISTINCT name FROM unnest($1::text[]) AS name) q"
		" CROSS JOIN LATERAL (SELECT j.priority, j.id FROM procq.jobs j"
		"  WHERE j.queue = q.name AND " READY_COND
		"  ORDER BY j.priority DESC, j.id LIMIT 1) c"
		" ORDER BY c.priority DESC, c.id",
		1, {TEXTARRAYOID}
	},
	[PQ_HANDLED_TASKS] = {
		/* tasks with a handler of kind $1 and ready jobs, best job first */
		"SELECT h.task FROM procq.handlers h CROSS JOIN LATERAL"
		" (SELECT j.priority, j.id FROM procq.jobs j"
		"  WHERE j.task = h.task AND " READY_COND
		"  ORDER BY j.priority DESC, j.id LIMIT 1) c"
		" WHERE h.kind = $1 ORDER BY c.priority DESC, c.id",
		1, {TEXTOID}
	},
	[PQ_FETCH_HANDLED] = {
		/* reads the handler in the same statement, so that it is there */
		"UPDATE procq.jobs j SET status = 'doing', attempts = j.attempts + 1,"
		" started_at = clock_timestamp(), finished_at = NULL, worker = $1,"
		" lease_expires_at = clock_timestamp() + make_interval(secs => $2)"
		" FROM procq.handlers h"
		" WHERE j.id = (SELECT c.id FROM procq.jobs c WHERE " READY_COND
		"  AND c.task = $3"
		/* a handler only runs jobs of roles its registrant may act as */
		"  AND EXISTS (SELECT 1 FROM procq.handlers x WHERE x.task = c.task"
		"   AND pg_catalog.pg_has_role(x.registered_by::oid, c.deferred_by::oid, 'USAGE'))"
		"  ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE SKIP LOCKED)"
		" AND h.task = j.task"
		" RETURNING j.id, j.task, j.args, j.deferred_by, h.command,"
		" (extract(epoch FROM h.timeout) * 1000)::int8, h.registered_by",
		3, {TEXTOID, INT4OID, TEXTOID}
	},
	[PQ_FAIL_FOR_GOOD] = {
		"UPDATE procq.jobs SET status = 'failed', error = $2"
		" WHERE id = $1 AND status = 'doing'",
		2, {INT8OID, TEXTOID}
	},
	[PQ_WORKER_FINISH] = {
		"SELECT procq.finish_job($1, $2::procq.job_status, $3, $4)",
		4, {INT8OID, TEXTOID, JSONBOID, TEXTOID}
	},
	[PQ_HANDLER_OWNER] = {
		"SELECT registered_by FROM procq.handlers WHERE task = $1",
		1, {TEXTOID}
	},
	[PQ_HANDLER_UPSERT] = {
		"INSERT INTO procq.handlers (task, kind, command, timeout, registered_by)"
		" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task) DO UPDATE SET"
		" kind = EXCLUDED.kind, command = EXCLUDED.command,"
		" timeout = EXCLUDED.timeout, registered_by = EXCLUDED.registered_by,"
		" registered_at = EXCLUDED.registered_at",
		5, {TEXTOID, TEXTOID, TEXTOID, INTERVALOID, REGROLEOID}
	},
	[PQ_HANDLER_DELETE] = {
		"DELETE FROM procq.handlers WHERE task = $1",
		1, {TEXTOID}
	},
	[PQ_ORPHANS] = {
		"SELECT id, lock, queueing_lock, worker FROM procq.jobs"
		" WHERE status = 'doing' AND worker LIKE 'procq worker % pid %'",
		0, {InvalidOid}
	},
	[PQ_ABORT_DOING] = {
		"UPDATE procq.jobs SET status = 'cancelled',"
		" error = 'aborted by procq.cancel_job'"
		" WHERE id = $1 AND status = 'doing' RETURNING id",
		1, {INT8OID}
	},
	[PQ_LOCK_JOB] = {
		"SELECT status::text, attempts, max_attempts, queueing_lock"
		" FROM procq.jobs WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	},
	[PQ_FINISH] = {
		"UPDATE procq.jobs SET status = $2::procq.job_status,"
		" result = $3, error = $4, lease_expires_at = NULL,"
		" finished_at = CASE WHEN $2 = 'todo' THEN NULL ELSE clock_timestamp() END,"
		" scheduled_at = CASE WHEN $2 = 'todo'"
		"   THEN clock_timestamp() + make_interval(secs => $5) ELSE scheduled_at END,"
		" delayed = ($2 = 'todo' AND $5 > 0)"
		" WHERE id = $1 RETURNING status::text",
		5, {INT8OID, TEXTOID, JSONBOID, TEXTOID, FLOAT8OID}
	},
	[PQ_RETRY] = {
		"UPDATE procq.jobs SET status = 'todo', attempts = 0, result = NULL,"
		" error = NULL, finished_at = NULL, cancelled_by = NULL,"
		" scheduled_at = $2,"
		" delayed = $2 IS NOT NULL AND $2 > statement_timestamp(),"
		" lock_blocked = lock IS NOT NULL"
		" WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING id",
		2, {INT8OID, TIMESTAMPTZOID}
	},
	[PQ_CANCEL] = {
		"UPDATE procq.jobs SET status = 'cancelled', finished_at = clock_timestamp(),"
		" error = 'cancelled by procq.cancel_job', lock_blocked = false,"
		" delayed = false"
		" WHERE id = $1 AND status = 'todo' RETURNING id",
		1, {INT8OID}
	},
	[PQ_HEARTBEAT] = {
		"UPDATE procq.jobs"
		" SET lease_expires_at = clock_timestamp() + make_interval(secs => $2)"
		" WHERE id = $1 AND status = 'doing' RETURNING lease_expires_at",
		2, {INT8OID, INT4OID}
	},
	[PQ_STALLED] = {
		"SELECT id, lock, queueing_lock FROM procq.jobs"
		" WHERE status = 'doing' AND lease_expires_at < statement_timestamp()"
		" ORDER BY lease_expires_at",
		0, {InvalidOid}
	},
	[PQ_RECOVER_STALLED] = {
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
		3, {INT8OID, TEXTOID, TEXTOID}
	},
	[PQ_PARENT_RESULTS] = {
		"SELECT coalesce(jsonb_object_agg(p.id::text, p.result), '{}')"
		" FROM procq.job_dependencies d JOIN procq.jobs p ON p.id = d.depends_on"
		" WHERE d.job_id = $1",
		1, {INT8OID}
	},
	[PQ_JOB_EXISTS] = {
		"SELECT status::text, lock, queueing_lock, queue, " READY_COND
		" FROM procq.jobs WHERE id = $1",
		1, {INT8OID}
	},
	[PQ_CHILDREN_OF] = {
		"SELECT job_id, depends_on FROM procq.job_dependencies"
		" WHERE depends_on = ANY($1) ORDER BY job_id",
		1, {INT8ARRAYOID}
	},
	[PQ_LOCKS_OF] = {
		"SELECT DISTINCT lock FROM procq.jobs"
		" WHERE id = ANY($1) AND lock IS NOT NULL ORDER BY lock",
		1, {INT8ARRAYOID}
	},
	[PQ_RELEASE_CHILDREN] = {
		"WITH children AS (SELECT id FROM procq.jobs WHERE id = ANY($1)"
		"  ORDER BY id FOR NO KEY UPDATE),"
		" released AS (UPDATE procq.jobs j"
		"  SET pending_parents = j.pending_parents - 1"
		"  FROM children c WHERE j.id = ANY($1) AND j.id = c.id"
		"  RETURNING j.queue, j." READY_COND " AS ready)"
		" SELECT DISTINCT queue FROM released WHERE ready",
		1, {INT8ARRAYOID}
	},
	[PQ_CANCEL_CHILDREN] = {
		"UPDATE procq.jobs j SET status = 'cancelled',"
		" finished_at = clock_timestamp(), cancelled_by = c.parent,"
		" error = 'parent job ' || c.parent || ' ' || $3,"
		" lock_blocked = false, delayed = false"
		" FROM unnest($1::bigint[], $2::bigint[]) AS c(child, parent)"
		" WHERE j.id = ANY($1) AND j.id = c.child AND j.status = 'todo'"
		" RETURNING j.id",
		3, {INT8ARRAYOID, INT8ARRAYOID, TEXTOID}
	},
	[PQ_LOCK_PARENTS_OF] = {
		"SELECT p.id FROM procq.jobs p WHERE p.id = ANY (ARRAY("
		" SELECT d.depends_on FROM procq.job_dependencies d"
		" WHERE d.job_id = ANY($1))) ORDER BY p.id FOR SHARE",
		1, {INT8ARRAYOID}
	},
	[PQ_REVIVE_CANDIDATES] = {
		"SELECT s.id, s.blame,"
		" (SELECT p.status::text FROM procq.jobs p WHERE p.id = s.blame)"
		" FROM (SELECT j.id, (SELECT d.depends_on FROM procq.job_dependencies d"
		"   WHERE d.job_id = j.id AND (SELECT p.status FROM procq.jobs p"
		"    WHERE p.id = d.depends_on) IN ('failed', 'cancelled')"
		"   ORDER BY d.depends_on LIMIT 1) AS blame"
		"  FROM procq.jobs j"
		"  JOIN unnest($1::bigint[], $2::bigint[]) AS c(child, parent)"
		"   ON j.id = c.child"
		"  WHERE j.id = ANY($1) AND j.status = 'cancelled'"
		"  AND j.cancelled_by = c.parent"
		/* one whose queueing_lock another job holds stays cancelled */
		"  AND NOT EXISTS (SELECT 1 FROM procq.jobs q WHERE q.status = 'todo'"
		"   AND q.queueing_lock = j.queueing_lock)) s",
		2, {INT8ARRAYOID, INT8ARRAYOID}
	},
	[PQ_REVIVE] = {
		"UPDATE procq.jobs SET status = 'todo', finished_at = NULL,"
		" cancelled_by = NULL, error = NULL,"
		" delayed = scheduled_at IS NOT NULL"
		"  AND scheduled_at > statement_timestamp(),"
		" lock_blocked = lock IS NOT NULL"
		" WHERE id = ANY($1) AND status = 'cancelled'"
		" RETURNING id, queue, lock, " READY_COND,
		1, {INT8ARRAYOID}
	},
	[PQ_REBLAME] = {
		"UPDATE procq.jobs j SET cancelled_by = c.parent,"
		" error = 'parent job ' || c.parent || ' ' || c.how"
		" FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS c(id, parent, how)"
		" WHERE j.id = ANY($1) AND j.id = c.id",
		3, {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID}
	},
	[PQ_FAILED_PARENT] = {
		"SELECT p.id, p.status::text FROM procq.job_dependencies d"
		" JOIN procq.jobs p ON p.id = d.depends_on"
		" WHERE d.job_id = $1 AND p.status IN ('failed', 'cancelled')"
		" ORDER BY p.id LIMIT 1",
		1, {INT8OID}
	},
	[PQ_LOCK_HEADS] = {
		"SELECT id, status::text FROM procq.jobs"
		" WHERE lock = $1 AND status IN ('todo', 'doing') AND NOT lock_blocked",
		1, {TEXTOID}
	},
	[PQ_LOCK_FIRST_TODO] = {
		"SELECT id FROM procq.jobs"
		" WHERE lock = $1 AND status IN ('todo', 'doing') AND status = 'todo'"
		" ORDER BY id LIMIT 1",
		1, {TEXTOID}
	},
	[PQ_SET_LOCK_BLOCKED] = {
		"UPDATE procq.jobs SET lock_blocked = $2"
		" WHERE id = $1 AND status = 'todo' RETURNING queue, " READY_COND,
		2, {INT8OID, BOOLOID}
	},
	[PQ_JOB_FOR_UPDATE] = {
		"SELECT status::text, pending_parents FROM procq.jobs"
		" WHERE id = $1 FOR UPDATE",
		1, {INT8OID}
	},
	[PQ_COUNT_PENDING_PARENTS] = {
		"SELECT count(*)::int4 FROM procq.job_dependencies d"
		" JOIN procq.jobs p ON p.id = d.depends_on"
		" WHERE d.job_id = $1 AND p.status <> 'succeeded'",
		1, {INT8OID}
	},
	[PQ_ADJUST_PENDING] = {
		"UPDATE procq.jobs SET pending_parents = $2 WHERE id = $1"
		" RETURNING queue, " READY_COND,
		2, {INT8OID, INT4OID}
	},
	[PQ_CANCEL_ORPHAN] = {
		"UPDATE procq.jobs SET status = 'cancelled',"
		" finished_at = clock_timestamp(), cancelled_by = $2, error = $3,"
		" lock_blocked = false, delayed = false"
		" WHERE id = $1 AND status = 'todo' RETURNING lock",
		3, {INT8OID, INT8OID, TEXTOID}
	},
};

/*
 * Prepared plans, one per PQStmt, made on first use and kept for the life
 * of the backend.  Plans survive DROP/CREATE EXTENSION: the plan cache
 * replans them when the tables they name change.
 */
static SPIPlanPtr pq_plans[PQ_NUM_STMTS];

/*
 * Owner of procq.jobs, looked up by pq_connect() for the API call or
 * trigger in progress; pq_exec() runs statements as this role.
 */
static Oid	pq_owner = InvalidOid;

void		_PG_init(void);

/*
 * _PG_init registers procq's settings.
 */
void
_PG_init(void)
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

	pq_worker_init();

	MarkGUCPrefixReserved("procq");
}

/*
 * pq_connect opens an SPI connection for an API function or trigger and
 * finds the role its internal statements run as.
 */
void
pq_connect(void)
{
	Oid			nspid;
	Oid			relid;
	HeapTuple	tuple;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "procq: SPI_connect failed");

	nspid = get_namespace_oid("procq", false);
	relid = get_relname_relid("jobs", nspid);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table procq.jobs does not exist"),
				 errhint("Reinstall the extension with DROP EXTENSION procq; CREATE EXTENSION procq;")));

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	pq_owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
}

/*
 * pq_finish closes the SPI connection opened by pq_connect.
 */
void
pq_finish(void)
{
	SPI_finish();
}

/*
 * pq_prepare returns the kept plan of an internal statement, preparing it
 * on first use.
 */
static SPIPlanPtr
pq_prepare(PQStmt stmt)
{
	const PQStmtDef *def = &pq_stmt_defs[stmt];
	SPIPlanPtr	plan;

	if (pq_plans[stmt] != NULL)
		return pq_plans[stmt];

	plan = SPI_prepare(def->sql, def->nargs, (Oid *) def->argtypes);
	if (plan == NULL)
		elog(ERROR, "procq: could not prepare statement %d: %s",
			 (int) stmt, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "procq: could not keep plan of statement %d", (int) stmt);
	pq_plans[stmt] = plan;
	return plan;
}

/*
 * pq_exec runs an internal statement as the owner of procq's tables, with
 * a snapshot taken now, and returns the number of rows it processed; the
 * rows themselves are in SPI_tuptable.  count limits the rows (0: all).
 *
 * If the statement fails, the error aborts the (sub)transaction, which
 * also restores the user id we switched away from.
 */
int
pq_exec(PQStmt stmt, Datum *values, const char *nulls, long count)
{
	SPIPlanPtr	plan;
	Oid			save_userid;
	int			save_sec_context;
	int			ret;
	int			gucnest = -1;

	Assert(OidIsValid(pq_owner));

	/*
	 * The statements run as the table owner, often a superuser: they must
	 * never resolve a name through a schema someone else can create in.
	 * The API functions pin search_path already; the background workers
	 * call this directly.
	 */
	if (strcmp(namespace_search_path, PQ_SEARCH_PATH) != 0)
	{
		gucnest = NewGUCNestLevel();
		(void) set_config_option("search_path", PQ_SEARCH_PATH,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	plan = pq_prepare(stmt);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(pq_owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);

	ret = SPI_execute_snapshot(plan, values, nulls,
							   GetLatestSnapshot(), InvalidSnapshot,
							   false, true, count);

	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (gucnest >= 0)
		AtEOXact_GUC(true, gucnest);

	if (ret < 0)
		elog(ERROR, "procq: statement %d failed: %s",
			 (int) stmt, SPI_result_code_string(ret));
	return (int) SPI_processed;
}

/*
 * pq_get_attr returns column col (1-based) of row row of the last
 * statement's result.
 */
Datum
pq_get_attr(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

/*
 * pq_get_text returns column col of row row of the last result as a C
 * string in the caller's memory context, or NULL for SQL NULL.
 */
char *
pq_get_text(int row, int col)
{
	bool		isnull;
	Datum		d = pq_get_attr(row, col, &isnull);

	if (isnull)
		return NULL;
	return TextDatumGetCString(d);
}

/*
 * pq_notify_ready tells LISTENers on channel "procq" that a job of queue
 * became ready, and the background workers too.  PostgreSQL sends a
 * notification once per distinct channel and payload per transaction, and
 * only if it commits; the workers are woken at commit as well.
 */
void
pq_notify_ready(const char *queue)
{
	Async_Notify(PQ_NOTIFY_CHANNEL, queue);
	pq_request_wakeup();
}

/*
 * advisory_lock takes a transaction-level advisory lock on (class, hash of
 * value); with nowait it returns false rather than wait for it.
 */
static bool
advisory_lock(uint32 class, const char *value, bool nowait)
{
	LOCKTAG		tag;
	uint32		hash;

	hash = DatumGetUInt32(hash_any((const unsigned char *) value, strlen(value)));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, class, hash, 2);
	return LockAcquire(&tag, ExclusiveLock, false, nowait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * pq_lock_key serializes, until the end of the transaction, every change
 * to the queue of jobs that share one lock value: deferring into it,
 * finishing, cancelling or requeueing one of its jobs, moving its head
 * along.  It must be taken before any row of that queue is locked (the
 * API functions and cascades do so), else two transactions could each
 * hold what the other waits for.  Fetching a job does not take it (see
 * pq_refresh_lock for why that is safe).
 */
void
pq_lock_key(const char *lock)
{
	(void) advisory_lock(PQ_ADVISORY_CLASS, lock, false);
}

/*
 * pq_try_lock_key is pq_lock_key, but with nowait it gives up at once when
 * another transaction holds the lock, and returns false.
 */
bool
pq_try_lock_key(const char *lock, bool nowait)
{
	return advisory_lock(PQ_ADVISORY_CLASS, lock, nowait);
}

/*
 * pq_lock_queueing_key serializes, until the end of the transaction, the
 * transactions that may put a job with this queueing_lock into todo, so
 * that "is another job waiting with it?" has a reliable answer: deferring
 * takes it, and so do finishing with a retry, recovering and retrying.
 * With nowait it returns false instead of waiting.
 */
bool
pq_lock_queueing_key(const char *queueing_lock, bool nowait)
{
	return advisory_lock(PQ_ADVISORY_CLASS + 1, queueing_lock, nowait);
}
