/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  Taking jobs: procq.fetch_job and fetch_jobs for external workers,
 *	  and promoting due scheduled jobs (also for the background workers,
 *	  whose claim is in worker_jobs.c).
 *
 * A fetch takes the best ready jobs (highest priority, then lowest id)
 * that the caller may act on (authz.c), skipping rows other fetchers have
 * locked, and makes them doing in the same statement.  The ready indexes
 * lead with deferred_by, and a fetch reads only the parts of the roles the
 * caller acts as (itself and the roles it has the privileges of; every
 * role for a superuser), so ready jobs of other roles cost it nothing.  A
 * filter on tasks reads the per-task ready index (one descent per role
 * and task), so ready jobs of other tasks cost nothing either; a filter on
 * queues (without tasks) reads the per-queue one.  Ready jobs never share
 * a lock value (only a lock queue's head is ready, see locks.c), so a
 * batch holds at most one job per lock.
 *
 * Jobs scheduled for later are not in the ready indexes.  Once due, a job
 * is taken directly from jobs_due_idx (by role and time), merged with the
 * ready ones by priority, and stops being delayed as it becomes doing: a
 * fetch never changes a job it does not return, so no due job stays locked
 * for the caller's transaction, hidden from other fetchers.  The
 * background workers still promote due jobs (delayed -> ready) in a short
 * transaction of their own before each claim (pq_promote_due).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "authz.h"
#include "fetch.h"
#include "guc.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_fetch_job);
PG_FUNCTION_INFO_V1(procq_fetch_jobs);

/*
 * A due job: scheduled for a time that has come, and fetchable but for
 * that (jobs_due_idx holds these, by role and time).
 */
#define PQ_DUE_COND \
	"status = 'todo' AND delayed AND pending_parents = 0 AND NOT lock_blocked" \
	" AND scheduled_at <= statement_timestamp()"

/* makes up to $1 due jobs ready (for the background workers) */
static PQStatement stmt_promote_due = PQ_STATEMENT(
	"WITH due AS (SELECT id FROM procq.jobs"
	"  WHERE status = 'todo' AND delayed"
	"  AND scheduled_at <= statement_timestamp()"
	"  ORDER BY scheduled_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
	" UPDATE procq.jobs j SET delayed = false FROM due WHERE j.id = due.id"
	" RETURNING j.queue, j.pending_parents = 0 AND NOT j.lock_blocked",
	1, INT4OID);

/*
 * Is any job due?  One probe of jobs_delayed_idx, so that a promotion with
 * nothing due does not pay for the promoting UPDATE.
 */
static PQStatement stmt_any_due = PQ_STATEMENT(
	"SELECT 1 FROM procq.jobs WHERE status = 'todo' AND delayed"
	" AND scheduled_at <= statement_timestamp() LIMIT 1",
	0, InvalidOid);

/* Has any of the roles $1 a due job?  One probe of jobs_due_idx per role. */
static PQStatement stmt_roles_due = PQ_STATEMENT_GENERIC(
	"SELECT 1 FROM procq.jobs WHERE deferred_by = ANY ($1::oid[]) AND " PQ_DUE_COND
	" LIMIT 1",
	1, OIDARRAYOID);

/*
 * The roles that have ready jobs or fetchable delayed ones, each found by
 * one descent of a ready index or jobs_due_idx: what a superuser's fetch
 * probes, instead of every role there is.
 */
static PQStatement stmt_roles_with_jobs = PQ_STATEMENT(
	"WITH RECURSIVE " PQ_ROLES_WITH("ready", PQ_READY_ALL_COND) ","
	PQ_ROLES_WITH("due", "status = 'todo' AND delayed AND pending_parents = 0 AND NOT lock_blocked")
	" SELECT role FROM ready WHERE role IS NOT NULL"
	" UNION SELECT role FROM due WHERE role IS NOT NULL ORDER BY 1",
	0, InvalidOid);

/*
 * Every fetch: cand (completed by one of the statements below) locks up
 * to $3 ready or due jobs, skipping those others hold; they become doing
 * by primary key (a due job stops being delayed), and come back in fetch
 * order.  $1 is the worker, $2 the lease in seconds.  They run their
 * generic plan: with LIMIT $3 the plan cache would otherwise plan them
 * anew on every call, which costs more than the fetch itself.
 */
#define BATCH_PREFIX "WITH cand AS MATERIALIZED ("
#define BATCH_SUFFIX \
	"), taken AS (UPDATE procq.jobs j SET status = 'doing'," \
	" attempts = j.attempts + 1, started_at = clock_timestamp()," \
	" finished_at = NULL, worker = coalesce($1, 'backend ' || pg_backend_pid())," \
	" lease_expires_at = clock_timestamp() + make_interval(secs => $2)," \
	" delayed = false" \
	" WHERE j.id = ANY (ARRAY(SELECT c.id FROM cand c)) RETURNING j.*)" \
	" SELECT * FROM taken ORDER BY priority DESC, id"
#define BATCH_LOCK " ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED"

/*
 * One role $4 and at most one queue or task $6 (tasks in the queues of $5,
 * NULL: any), with no due job of that role: the first $3 entries of that
 * role's part of a ready index, locked at once.
 */
static PQStatement stmt_direct_any = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE deferred_by = $4 AND " PQ_READY_ALL_COND
	BATCH_LOCK BATCH_SUFFIX,
	4, TEXTOID, INT4OID, INT4OID, OIDOID);

static PQStatement stmt_direct_queue = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE deferred_by = $4 AND queue = $5"
	" AND " PQ_READY_COND BATCH_LOCK BATCH_SUFFIX,
	5, TEXTOID, INT4OID, INT4OID, OIDOID, TEXTOID);

static PQStatement stmt_direct_task = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE deferred_by = $4 AND task = $6"
	" AND " PQ_READY_COND " AND ($5::text[] IS NULL OR queue = ANY ($5))"
	BATCH_LOCK BATCH_SUFFIX,
	6, TEXTOID, INT4OID, INT4OID, OIDOID, TEXTARRAYOID, TEXTOID);

/*
 * Several groups (a role and a queue or task: the roles of $4 times the
 * queues or tasks of the filter), or due jobs: a first look at the best
 * $3 entries of each group's ready index, and at the best $3 due jobs of
 * each role, without locking, says how many of the batch each gives (its
 * quota); then each one's quota is locked in its index, skipping what
 * others hold.  Locking the best $3 of every group and taking the best $3
 * of those would keep the surplus locked, and hidden from other fetchers,
 * until our transaction ends.  (When another fetcher takes a group's jobs
 * at the same instant, that group's quota is filled with its next ones.)
 *
 * groups is a FROM item giving (role, grp); grpcond matches j's group
 * column to g.grp (or is empty); filter restricts both ready and due jobs
 * (queues or tasks of the fetch).
 */
#define BATCH_QUOTA(groups, grpcond, filter) \
	"WITH g AS (SELECT * FROM " groups ")," \
	" peek AS ((SELECT g.role, g.grp, false AS due, c.priority, c.id FROM g" \
	"   CROSS JOIN LATERAL (SELECT j.priority, j.id FROM procq.jobs j" \
	"    WHERE j.deferred_by = g.role" grpcond " AND " PQ_READY_COND filter \
	"    ORDER BY j.priority DESC, j.id LIMIT $3) c)" \
	"  UNION ALL" \
	"  (SELECT d.role, NULL, true, c.priority, c.id" \
	"   FROM (SELECT DISTINCT role FROM g) d CROSS JOIN LATERAL" \
	"   (SELECT j.priority, j.id FROM procq.jobs j" \
	"    WHERE j.deferred_by = d.role AND " PQ_DUE_COND filter \
	"    ORDER BY j.priority DESC, j.id LIMIT $3) c)" \
	"  ORDER BY priority DESC, id LIMIT $3)," \
	" quota AS (SELECT role, grp, due, count(*) AS k FROM peek GROUP BY role, grp, due)," \
	" cand_ready AS MATERIALIZED (SELECT c.id FROM quota g CROSS JOIN LATERAL" \
	"  (SELECT j.id FROM procq.jobs j WHERE j.deferred_by = g.role" grpcond \
	"   AND " PQ_READY_COND filter \
	"   ORDER BY j.priority DESC, j.id LIMIT g.k FOR UPDATE SKIP LOCKED) c" \
	"  WHERE NOT g.due)," \
	" cand_due AS MATERIALIZED (SELECT c.id FROM quota g CROSS JOIN LATERAL" \
	"  (SELECT j.id FROM procq.jobs j WHERE j.deferred_by = g.role" \
	"   AND " PQ_DUE_COND filter \
	"   ORDER BY j.priority DESC, j.id LIMIT g.k FOR UPDATE SKIP LOCKED) c" \
	"  WHERE g.due)," \
	" cand AS MATERIALIZED (SELECT id FROM cand_ready UNION ALL SELECT id FROM cand_due"

/*
 * The due jobs of one role $4, under the fetch's filter (queues $5, tasks
 * $6): the first $3 of jobs_due_idx for that role, best first.
 */
static PQStatement stmt_direct_due_any = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE deferred_by = $4 AND " PQ_DUE_COND
	BATCH_LOCK BATCH_SUFFIX,
	4, TEXTOID, INT4OID, INT4OID, OIDOID);

static PQStatement stmt_direct_due_queues = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE deferred_by = $4 AND " PQ_DUE_COND
	" AND queue = ANY ($5)" BATCH_LOCK BATCH_SUFFIX,
	5, TEXTOID, INT4OID, INT4OID, OIDOID, TEXTARRAYOID);

static PQStatement stmt_direct_due_tasks = PQ_STATEMENT_GENERIC(
	BATCH_PREFIX "SELECT id FROM procq.jobs WHERE deferred_by = $4 AND " PQ_DUE_COND
	" AND task = ANY ($6) AND ($5::text[] IS NULL OR queue = ANY ($5))"
	BATCH_LOCK BATCH_SUFFIX,
	6, TEXTOID, INT4OID, INT4OID, OIDOID, TEXTARRAYOID, TEXTARRAYOID);

/*
 * The groups of a fetch of one job (as for BATCH_QUOTA, with the due jobs
 * of each role as one more group per role) that have a job, ordered by
 * their best job, without locking anything: fetch_one probes them in this
 * order.  $1 roles, $2 queues, $3 tasks.
 */
#define GROUPS_BY_READINESS(groups, grpcond, filter) \
	"WITH g AS (SELECT * FROM " groups ")" \
	" (SELECT g.role, g.grp, false AS due, c.priority, c.id FROM g" \
	"  CROSS JOIN LATERAL (SELECT j.priority, j.id FROM procq.jobs j" \
	"   WHERE j.deferred_by = g.role" grpcond " AND " PQ_READY_COND filter \
	"   ORDER BY j.priority DESC, j.id LIMIT 1) c)" \
	" UNION ALL" \
	" (SELECT d.role, NULL, true, c.priority, c.id" \
	"  FROM (SELECT DISTINCT role FROM g) d CROSS JOIN LATERAL" \
	"  (SELECT j.priority, j.id FROM procq.jobs j" \
	"   WHERE j.deferred_by = d.role AND " PQ_DUE_COND filter \
	"   ORDER BY j.priority DESC, j.id LIMIT 1) c)" \
	" ORDER BY priority DESC, id"

static PQStatement stmt_groups_any = PQ_STATEMENT_GENERIC(
	GROUPS_BY_READINESS("unnest($1::oid[]) AS r(role), (VALUES (NULL::text)) AS x(grp)",
						" AND j.priority IS NOT NULL", ""),
	3, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID);

static PQStatement stmt_groups_queues = PQ_STATEMENT_GENERIC(
	GROUPS_BY_READINESS("unnest($1::oid[]) AS r(role),"
						" (SELECT DISTINCT q FROM unnest($2::text[]) AS q) AS x(grp)",
						" AND j.queue = g.grp", " AND j.queue = ANY ($2)"),
	3, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID);

static PQStatement stmt_groups_tasks = PQ_STATEMENT_GENERIC(
	GROUPS_BY_READINESS("unnest($1::oid[]) AS r(role),"
						" (SELECT DISTINCT t FROM unnest($3::text[]) AS t) AS x(grp)",
						" AND j.task = g.grp",
						" AND j.task = ANY ($3) AND ($2::text[] IS NULL OR j.queue = ANY ($2))"),
	3, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID);

/* the roles of $4, any queue */
static PQStatement stmt_quota_any = PQ_STATEMENT_GENERIC(
	BATCH_QUOTA("unnest($4::oid[]) AS r(role), (VALUES (NULL::text)) AS x(grp)",
				" AND j.priority IS NOT NULL", "")
	BATCH_SUFFIX,
	4, TEXTOID, INT4OID, INT4OID, OIDARRAYOID);

/* the roles of $4 times the queues of $5 */
static PQStatement stmt_quota_queues = PQ_STATEMENT_GENERIC(
	BATCH_QUOTA("unnest($4::oid[]) AS r(role),"
				" (SELECT DISTINCT q FROM unnest($5::text[]) AS q) AS x(grp)",
				" AND j.queue = g.grp", " AND j.queue = ANY ($5)")
	BATCH_SUFFIX,
	5, TEXTOID, INT4OID, INT4OID, OIDARRAYOID, TEXTARRAYOID);

/* the roles of $4 times the tasks of $6, in the queues of $5 (NULL: any) */
static PQStatement stmt_quota_tasks = PQ_STATEMENT_GENERIC(
	BATCH_QUOTA("unnest($4::oid[]) AS r(role),"
				" (SELECT DISTINCT t FROM unnest($6::text[]) AS t) AS x(grp)",
				" AND j.task = g.grp",
				" AND j.task = ANY ($6) AND ($5::text[] IS NULL OR j.queue = ANY ($5))")
	BATCH_SUFFIX,
	6, TEXTOID, INT4OID, INT4OID, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID);

/*
 * promote_due_up_to makes up to limit jobs whose scheduled time has come
 * fetchable; with notify, the queues of those that became ready are
 * notified.
 */
static void
promote_due_up_to(int limit, bool notify)
{
	Datum		v[1] = {Int32GetDatum(limit)};
	int			npromoted;
	bool		isnull;

	/*
	 * Nothing due is the common case.  A job that falls due right after the
	 * probe is promoted by the next fetch, as it would be had it fallen due
	 * right after the UPDATE.
	 */
	if (pq_exec(&stmt_any_due, NULL, NULL, 1) == 0)
		return;
	npromoted = pq_exec(&stmt_promote_due, v, NULL, 0);
	if (!notify)
		return;
	for (int i = 0; i < npromoted; i++)
		if (DatumGetBool(pq_get_attr(i, 2, &isnull)))
			pq_notify_ready(pq_get_text(i, 1));
}

/*
 * pq_promote_due makes up to ten jobs whose scheduled time has come
 * fetchable, so that the ready indexes never hold jobs of the future; with
 * notify, the queues of those that became ready are notified.
 */
void
pq_promote_due(bool notify)
{
	promote_due_up_to(10, notify);
}

/* A text[] filter argument: absent (NULL) or its elements. */
typedef struct TextFilter
{
	ArrayType  *array;			/* NULL: no filter */
	Datum	   *elems;
	int			n;
} TextFilter;

/*
 * filter_arg reads the text[] argument argno, named name, into *f; an
 * absent argument (NULL, or not passed to a 1.0 declaration) is no filter.
 * NULL elements are an error.
 */
static void
filter_arg(FunctionCallInfo fcinfo, int argno, const char *name, TextFilter *f)
{
	bool	   *nulls;

	f->array = NULL;
	f->elems = NULL;
	f->n = -1;
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return;
	f->array = PG_GETARG_ARRAYTYPE_P(argno);
	deconstruct_array(f->array, TEXTOID, -1, false, TYPALIGN_INT,
					  &f->elems, &nulls, &f->n);
	for (int i = 0; i < f->n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name),
					 errhint("Pass NULL instead of an array to fetch from every %s.",
							 strcmp(name, "queues") == 0 ? "queue" : "task")));
}

/*
 * probe_roles sets *roles (an oid[] Datum) to the roles whose jobs a fetch
 * looks at, *first to the first of them, and returns how many: the roles
 * the current user acts as (authz.c) or, for a superuser, who acts as
 * every role, those that have jobs to fetch (stmt_roles_with_jobs).
 */
static int
probe_roles(Oid *first, Datum *roles)
{
	Oid		   *acting;
	int			n;
	Datum	   *d;

	if (!superuser())
	{
		n = pq_acting_roles(&acting);
		*first = n > 0 ? acting[0] : InvalidOid;
		*roles = pq_acting_roles_array();
		return n;
	}
	n = pq_exec(&stmt_roles_with_jobs, NULL, NULL, 0);
	d = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		d[i] = pq_get_attr(i, 1, &isnull);
	}
	*first = n > 0 ? DatumGetObjectId(d[0]) : InvalidOid;
	*roles = PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	return n;
}

/*
 * direct_statement sets v[3..5] and nulls for the direct probe of one
 * group (role, and grp: a queue or task, or NULL) or, with due, of one
 * role's due jobs under the fetch's filters, and returns its statement.
 */
static PQStatement *
direct_statement(Oid role, Datum grp, bool due, TextFilter *queues,
				 TextFilter *tasks, Datum *v, char *nulls)
{
	v[3] = ObjectIdGetDatum(role);
	if (tasks->n >= 0)
	{
		v[4] = queues->array ? PointerGetDatum(queues->array) : (Datum) 0;
		nulls[4] = queues->array ? ' ' : 'n';
		v[5] = due ? PointerGetDatum(tasks->array) : grp;
		return due ? &stmt_direct_due_tasks : &stmt_direct_task;
	}
	if (queues->n >= 0)
	{
		v[4] = due ? PointerGetDatum(queues->array) : grp;
		return due ? &stmt_direct_due_queues : &stmt_direct_queue;
	}
	return due ? &stmt_direct_due_any : &stmt_direct_any;
}

/* A group of a fetch of one job, as stmt_groups_* return them. */
typedef struct FetchGroup
{
	Oid			role;
	Datum		grp;			/* a queue or task (text), or 0 */
	bool		due;
} FetchGroup;

/*
 * fetch_one takes the best job of several groups: the groups are ordered
 * by their best job (one probe of its index each, without locking), and
 * the first one that has a job nobody else is taking gives it.  (A group
 * whose best job another fetcher is taking at that instant gives its next
 * best.)  v and nulls hold the worker, lease and n parameters.
 */
static int
fetch_one(Datum role_array, TextFilter *queues, TextFilter *tasks,
		  Datum *v, char *nulls)
{
	Datum		g[3];
	char		gn[3] = {' ', queues->array ? ' ' : 'n', tasks->array ? ' ' : 'n'};
	PQStatement *stmt = tasks->n >= 0 ? &stmt_groups_tasks
		: queues->n >= 0 ? &stmt_groups_queues : &stmt_groups_any;
	int			ngroups;
	FetchGroup *groups;

	g[0] = role_array;
	g[1] = queues->array ? PointerGetDatum(queues->array) : (Datum) 0;
	g[2] = tasks->array ? PointerGetDatum(tasks->array) : (Datum) 0;
	ngroups = pq_exec(stmt, g, gn, 0);
	groups = palloc(sizeof(FetchGroup) * Max(ngroups, 1));
	for (int i = 0; i < ngroups; i++)
	{
		bool		isnull;
		Datum		grp = pq_get_attr(i, 2, &isnull);

		groups[i].grp = isnull ? (Datum) 0 : PointerGetDatum(DatumGetTextPCopy(grp));
		groups[i].role = DatumGetObjectId(pq_get_attr(i, 1, &isnull));
		groups[i].due = DatumGetBool(pq_get_attr(i, 3, &isnull));
	}
	for (int i = 0; i < ngroups; i++)
	{
		stmt = direct_statement(groups[i].role, groups[i].grp, groups[i].due,
								queues, tasks, v, nulls);
		if (pq_exec(stmt, v, nulls, 0) == 1)
			return 1;
	}
	return 0;
}

/*
 * fetch_batch takes up to n ready or due jobs of the given queues and tasks
 * (a filter with n < 0 is none; neither is empty) that the current user may
 * act on, for worker (NULL: "backend <pid>"), and returns how many; the
 * rows, in fetch order, are in SPI_tuptable.
 *
 * Only the roles the caller acts as are looked at (authz.c), each in its
 * own part of the ready indexes, which lead with deferred_by: ready jobs of
 * other roles cost nothing.  With tasks, the per-task ready index is read;
 * else the per-queue one or the one of all queues.  One role and at most
 * one queue or task, with no due job, is one probe of one index; one job
 * of several groups (or with due jobs) is fetch_one; a batch of several
 * groups is the quota statement, which merges the groups' best jobs and
 * the due ones.
 */
static int
fetch_batch(int n, TextFilter *queues, TextFilter *tasks, Datum worker, bool worker_null)
{
	Datum		v[6];
	char		nulls[6] = {worker_null ? 'n' : ' ', ' ', ' ', ' ', ' ', ' '};
	PQStatement *stmt;
	Oid			role;
	Datum		role_array;
	int			nroles = probe_roles(&role, &role_array);
	bool		direct;

	if (nroles == 0)
		return 0;
	v[0] = worker;
	v[1] = Int32GetDatum(pq_lease_duration);
	v[2] = Int32GetDatum(n);

	/* one group and nothing due: the direct probe */
	direct = nroles == 1 && (tasks->n >= 0 ? tasks->n == 1 : queues->n <= 1);
	if (direct)
	{
		Datum		r[1] = {role_array};

		direct = pq_exec(&stmt_roles_due, r, NULL, 1) == 0;
	}
	if (direct)
	{
		Datum		grp = tasks->n == 1 ? tasks->elems[0]
			: queues->n == 1 ? queues->elems[0] : (Datum) 0;

		return pq_exec(direct_statement(role, grp, false, queues, tasks, v, nulls),
					   v, nulls, 0);
	}
	if (n == 1)
		return fetch_one(role_array, queues, tasks, v, nulls);

	v[3] = role_array;
	if (tasks->n >= 0)
	{
		v[4] = queues->array ? PointerGetDatum(queues->array) : (Datum) 0;
		nulls[4] = queues->array ? ' ' : 'n';
		v[5] = PointerGetDatum(tasks->array);
		stmt = &stmt_quota_tasks;
	}
	else if (queues->n >= 0)
	{
		v[4] = PointerGetDatum(queues->array);
		stmt = &stmt_quota_queues;
	}
	else
		stmt = &stmt_quota_any;
	return pq_exec(stmt, v, nulls, 0);
}

/*
 * procq.fetch_job(queues text[], worker text, tasks text[]) returns setof
 * procq.jobs
 *
 * Returns zero or one job, now doing: the best ready job of the given
 * queues and tasks (NULL: of any).
 */
Datum
procq_fetch_job(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TextFilter	queues;
	TextFilter	tasks;

	InitMaterializedSRF(fcinfo, 0);

	filter_arg(fcinfo, 0, "queues", &queues);
	filter_arg(fcinfo, 2, "tasks", &tasks);

	/* An empty list of queues or tasks fetches nothing. */
	if (queues.n == 0 || tasks.n == 0)
		return (Datum) 0;

	pq_connect();
	if (fetch_batch(1, &queues, &tasks,
					PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1),
					PG_ARGISNULL(1)) == 1)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[0]);
	pq_finish();
	return (Datum) 0;
}

/*
 * procq.fetch_jobs(n integer, queues text[], worker text, tasks text[])
 * returns setof procq.jobs
 *
 * Takes up to n ready jobs of the given queues and tasks (NULL: of any)
 * in one statement, under fetch_job's rules, and returns them in fetch
 * order (highest priority, then lowest id).
 */
Datum
procq_fetch_jobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n;
	TextFilter	queues;
	TextFilter	tasks;
	int			ntaken;

	InitMaterializedSRF(fcinfo, 0);

	pq_require_arg(fcinfo, 0, "n");
	n = PG_GETARG_INT32(0);
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be at least 1"),
				 errdetail("n was %d.", n)));
	filter_arg(fcinfo, 1, "queues", &queues);
	filter_arg(fcinfo, 3, "tasks", &tasks);
	if (queues.n == 0 || tasks.n == 0)
		return (Datum) 0;

	pq_connect();
	ntaken = fetch_batch(n, &queues, &tasks,
						 PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
						 PG_ARGISNULL(2));
	for (int i = 0; i < ntaken; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	pq_finish();
	return (Datum) 0;
}
