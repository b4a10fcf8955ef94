/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  What procq.queue_stats and procq.metrics() read without a scan of
 *	  the finished jobs: per-queue counts of the final jobs (succeeded,
 *	  failed, cancelled), kept by the bookkeeping triggers, and
 *	  procq.metrics() itself.
 *
 * The live jobs (todo, doing) are few and indexed (jobs_live_idx), so the
 * view counts them where they are.  The final jobs are most of the table:
 * counting them per call would read millions of rows.  So every statement
 * that moves jobs into or out of a final status, or deletes final jobs,
 * adds one row of deltas per queue to procq.queue_counts, in its own
 * transaction (so the counts commit, or roll back, with the change; a
 * reader sums the rows it sees, in the same snapshot as the jobs):
 *
 *	- an UPDATE (finish, cancel, retry, a cascade, a DBA's UPDATE of status
 *	  or queue): -1 for the old final status, +1 for the new one;
 *	- an INSERT of a final job (defer of a job whose parent already failed,
 *	  a restore by pg_dump): +1;
 *	- a DELETE (purge, retention, a DBA's DELETE): -1; TRUNCATE: no rows.
 *
 * The *_total columns count each entry into a final status and are never
 * decremented (not by a delete, nor by a retry): Prometheus counters.
 *
 * Inserting, never updating, means that two transactions ending jobs of
 * one queue never wait for each other (no hot row) and never make each
 * other fail under REPEATABLE READ.  The rows are folded together from
 * time to time by the statement that adds them (one in
 * PQ_FOLD_ONE_IN, at random, in READ COMMITTED only): it deletes the rows
 * that no other transaction is folding (SKIP LOCKED), and inserts their
 * sums, one row per queue (none for a queue whose sums are all 0).  So the
 * table holds a few rows per queue plus the rows since the last fold,
 * whatever the number of jobs.
 *
 * On procq 1.0's schema (no procq.queue_counts) nothing is counted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "procq.h"
#include "spi_exec.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(procq_jobs_final_inserted);
PG_FUNCTION_INFO_V1(procq_jobs_truncated);
PG_FUNCTION_INFO_V1(procq_metrics);

/* A statement that adds counts folds the table once in this many, at random. */
#define PQ_FOLD_ONE_IN 32

/* Room for a queue name: 255 characters of at most 4 bytes, and a NUL. */
#define PQ_QUEUE_KEY_SIZE (PQ_NAME_MAX_CHARS * 4 + 1)

static const char *const final_names[3] = {"succeeded", "failed", "cancelled"};

static PQStatement stmt_fold_counts = PQ_STATEMENT(
	"WITH gone AS (DELETE FROM procq.queue_counts WHERE ctid = ANY (ARRAY("
	"  SELECT ctid FROM procq.queue_counts FOR UPDATE SKIP LOCKED))"
	"  RETURNING *),"
	" sums AS (SELECT queue, sum(succeeded)::int8 AS s, sum(failed)::int8 AS f,"
	"  sum(cancelled)::int8 AS c, sum(succeeded_total)::int8 AS st,"
	"  sum(failed_total)::int8 AS ft, sum(cancelled_total)::int8 AS ct"
	"  FROM gone GROUP BY queue)"
	" INSERT INTO procq.queue_counts (queue, succeeded, failed, cancelled,"
	"  succeeded_total, failed_total, cancelled_total)"
	" SELECT * FROM sums WHERE s <> 0 OR f <> 0 OR c <> 0 OR st <> 0 OR ft <> 0"
	"  OR ct <> 0",
	0);

static PQStatement stmt_reset_counts = PQ_STATEMENT(
	"DELETE FROM procq.queue_counts", 0);

/*
 * The rows of procq.metrics(): per queue from procq.queue_stats and the
 * totals of procq.queue_counts, then the background workers' states from
 * their shared memory slots (procq.worker_status()), with queue NULL.
 * Every worker state has a row, 0 when no worker is in it, so that the
 * series exist before the first worker starts.
 */
static PQStatement stmt_metrics = PQ_STATEMENT(
	"SELECT m.metric, s.queue, m.value FROM procq.queue_stats s"
	" CROSS JOIN LATERAL (VALUES"
	"  ('jobs_ready', s.ready::float8),"
	"  ('jobs_waiting', (s.waiting_parents + s.waiting_lock + s.scheduled)::float8),"
	"  ('jobs_waiting_parents', s.waiting_parents::float8),"
	"  ('jobs_waiting_lock', s.waiting_lock::float8),"
	"  ('jobs_scheduled', s.scheduled::float8),"
	"  ('jobs_running', s.doing::float8),"
	"  ('jobs_succeeded', s.succeeded::float8),"
	"  ('jobs_failed', s.failed::float8),"
	"  ('jobs_cancelled', s.cancelled::float8),"
	"  ('jobs_finished_last_minute', s.finished_last_minute::float8),"
	"  ('oldest_ready_age_seconds',"
	"   coalesce(extract(epoch FROM s.oldest_ready_age)::float8, 0))) AS m(metric, value)"
	" UNION ALL"
	" SELECT m.metric, t.queue, m.value FROM (SELECT queue,"
	"   sum(succeeded_total)::float8 AS st, sum(failed_total)::float8 AS ft,"
	"   sum(cancelled_total)::float8 AS ct"
	"  FROM procq.queue_counts GROUP BY queue) t"
	" CROSS JOIN LATERAL (VALUES ('jobs_succeeded_total', t.st),"
	"  ('jobs_failed_total', t.ft), ('jobs_cancelled_total', t.ct)) AS m(metric, value)"
	" UNION ALL"
	" SELECT 'workers_' || replace(st.state, ' ', '_'), NULL,"
	"  (SELECT count(*) FROM procq.worker_status() w WHERE w.state = st.state)::float8"
	" FROM unnest(ARRAY['starting', 'idle', 'running sql', 'running shell']) AS st(state)"
	" UNION ALL"
	" SELECT 'workers_jobs_done_total', NULL, coalesce(sum(w.jobs_done), 0)::float8"
	"  FROM procq.worker_status() w"
	" UNION ALL"
	" SELECT 'workers_longest_job_seconds', NULL,"
	"  coalesce(max(extract(epoch FROM clock_timestamp() - w.job_started_at)), 0)::float8"
	"  FROM procq.worker_status() w"
	" ORDER BY 2 NULLS LAST, 1",
	0);

/* The deltas of one queue. */
typedef struct QueueDeltas
{
	char		queue[PQ_QUEUE_KEY_SIZE];	/* hash key */
	int64		count[3];		/* succeeded, failed, cancelled */
	int64		total[3];		/* entries into each, never decremented */
} QueueDeltas;

/*
 * counts_table returns the OID of procq.queue_counts, or InvalidOid when
 * there is none (procq 1.0's schema).
 */
static Oid
counts_table(void)
{
	Oid			nsp = get_namespace_oid("procq", true);

	return OidIsValid(nsp) ? get_relname_relid("queue_counts", nsp) : InvalidOid;
}

/*
 * pq_final_counts_start prepares counts for the rows of procq.jobs (whose
 * descriptor is desc) of one statement.  Costs two syscache lookups, and
 * three more on procq 1.1.
 */
void
pq_final_counts_start(PQFinalCounts *counts, TupleDesc desc)
{
	memset(counts, 0, sizeof(PQFinalCounts));
	counts->relid = counts_table();
	counts->enabled = OidIsValid(counts->relid);
	if (!counts->enabled)
		return;
	counts->status_att = SPI_fnumber(desc, "status");
	counts->queue_att = SPI_fnumber(desc, "queue");
	for (int i = 0; i < 3; i++)
		counts->final_oids[i] =
			GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
							ObjectIdGetDatum(TupleDescAttr(desc, counts->status_att - 1)->atttypid),
							CStringGetDatum(final_names[i]));
}

/*
 * final_index is 0, 1 or 2 for a final status (succeeded, failed,
 * cancelled), -1 for the others.
 */
static int
final_index(PQFinalCounts *counts, Datum status)
{
	for (int i = 0; i < 3; i++)
		if (DatumGetObjectId(status) == counts->final_oids[i])
			return i;
	return -1;
}

/*
 * add_delta adds sign to queue's count of final status i, and to its total
 * when entered.
 */
static void
add_delta(PQFinalCounts *counts, const char *queue, int i, int sign, bool entered)
{
	QueueDeltas *d;
	bool		found;

	if (strlen(queue) >= PQ_QUEUE_KEY_SIZE)
		elog(ERROR, "procq: queue name too long to be counted");
	if (counts->queues == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = PQ_QUEUE_KEY_SIZE;
		ctl.entrysize = sizeof(QueueDeltas);
		ctl.hcxt = CurrentMemoryContext;
		counts->queues = hash_create("procq queue counts", 16, &ctl,
									 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	d = hash_search(counts->queues, queue, HASH_ENTER, &found);
	if (!found)
	{
		memset(d->count, 0, sizeof(d->count));
		memset(d->total, 0, sizeof(d->total));
	}
	d->count[i] += sign;
	if (entered)
		d->total[i]++;
}

/*
 * pq_final_counts_change counts one row a statement changed: old is its
 * version before (NULL for an INSERT), new after (NULL for a DELETE).  A
 * row that leaves a final status (or a queue, in a final status) counts
 * -1 there, one that enters one +1 (and in the total, when the status is
 * new).  Rows that are not final before or after (most of them: defers,
 * claims, releases) cost two attribute reads.
 */
void
pq_final_counts_change(PQFinalCounts *counts, TupleTableSlot *old,
					   TupleTableSlot *new)
{
	bool		isnull;
	int			was = -1;
	int			is = -1;
	char	   *old_queue = NULL;
	char	   *new_queue = NULL;

	if (!counts->enabled)
		return;
	if (old != NULL)
		was = final_index(counts, slot_getattr(old, counts->status_att, &isnull));
	if (new != NULL)
		is = final_index(counts, slot_getattr(new, counts->status_att, &isnull));
	if (was < 0 && is < 0)
		return;
	if (old != NULL)
		old_queue = TextDatumGetCString(slot_getattr(old, counts->queue_att, &isnull));
	if (new != NULL)
		new_queue = TextDatumGetCString(slot_getattr(new, counts->queue_att, &isnull));
	if (was == is && strcmp(old_queue, new_queue) == 0)
		return;
	if (was >= 0)
		add_delta(counts, old_queue, was, -1, false);
	if (is >= 0)
		add_delta(counts, new_queue, is, 1, is != was);
}

/*
 * pq_final_counts_pending says whether pq_final_counts_flush has anything
 * to write.
 */
bool
pq_final_counts_pending(PQFinalCounts *counts)
{
	return counts->enabled && counts->queues != NULL &&
		hash_get_num_entries(counts->queues) > 0;
}

/*
 * pq_final_counts_flush writes the deltas, one row per queue, and now and
 * then folds the table (see the file header).  The rows are inserted
 * straight into the heap of procq.queue_counts, without SPI or the
 * executor: the table has no index, no constraint but NOT NULL (every
 * column is set) and no trigger, and it is procq's own bookkeeping, which
 * the trigger writes whoever runs the statement (as the rows of
 * procq.jobs it follows).  The caller has pinned search_path (for the
 * fold's statement).  may_fold is false for the row trigger of jobs
 * inserted already final: a COPY or INSERT ... SELECT of many such jobs
 * (a restore) calls it once per row in one transaction, and a fold there
 * would read again every delta row the transaction wrote and deleted so
 * far (dead but not removable until it ends): quadratic in the rows.  Its
 * deltas are folded by a later statement instead.
 */
void
pq_final_counts_flush(PQFinalCounts *counts, bool may_fold)
{
	Relation	rel;
	HASH_SEQ_STATUS seq;
	QueueDeltas *d;

	if (!pq_final_counts_pending(counts))
		return;
	rel = table_open(counts->relid, RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != 7)
		elog(ERROR, "procq: procq.queue_counts does not have the columns of procq 1.1");
	hash_seq_init(&seq, counts->queues);
	while ((d = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};
		HeapTuple	tuple;

		values[0] = CStringGetTextDatum(d->queue);
		for (int i = 0; i < 3; i++)
		{
			values[1 + i] = Int64GetDatum(d->count[i]);
			values[4 + i] = Int64GetDatum(d->total[i]);
		}
		tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
		simple_heap_insert(rel, tuple);
		heap_freetuple(tuple);
	}
	table_close(rel, RowExclusiveLock);
	hash_destroy(counts->queues);
	counts->queues = NULL;

	if (may_fold && XactIsoLevel == XACT_READ_COMMITTED &&
		pg_prng_uint32(&pg_global_prng_state) % PQ_FOLD_ONE_IN == 0)
	{
		pq_connect();
		(void) pq_exec(&stmt_fold_counts, NULL, NULL, 0);
		pq_finish();
	}
}

/*
 * procq.jobs_final_inserted(): AFTER INSERT ON procq.jobs FOR EACH ROW,
 * WHEN the new job is final (a defer whose parent already failed, a
 * 'failure' job whose parents all succeeded, a restore by pg_dump): it is
 * counted.  A row trigger with a WHEN clause, so that the inserts of todo
 * jobs (nearly all of them) cost only that clause.
 */
Datum
procq_jobs_final_inserted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	TupleTableSlot *slot;
	PQFinalCounts counts;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("procq.jobs_final_inserted must be fired as an AFTER INSERT ... FOR EACH ROW trigger")));
	desc = trigdata->tg_relation->rd_att;
	pq_final_counts_start(&counts, desc);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	ExecStoreHeapTuple(trigdata->tg_trigtuple, slot, false);
	pq_final_counts_change(&counts, NULL, slot);
	ExecDropSingleTupleTableSlot(slot);
	pq_final_counts_flush(&counts, false);
	return PointerGetDatum(NULL);
}

/*
 * procq.jobs_truncated(): AFTER TRUNCATE ON procq.jobs FOR EACH STATEMENT:
 * no jobs, nothing counted (the totals start again from 0).
 */
Datum
procq_jobs_truncated(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("procq.jobs_truncated must be fired as an AFTER TRUNCATE trigger")));
	if (OidIsValid(counts_table()))
	{
		pq_connect();
		(void) pq_exec(&stmt_reset_counts, NULL, NULL, 0);
		pq_finish();
	}
	return PointerGetDatum(NULL);
}

/*
 * procq.metrics() returns table (metric text, queue text, value double
 * precision)
 *
 * The rows a Prometheus exporter scrapes (postgres_exporter's custom
 * queries: docs/postgres_exporter.yaml), read as the owner of procq's
 * tables (so a monitoring role needs only EXECUTE on it): per queue, the
 * counts of procq.queue_stats (jobs_ready, jobs_waiting and its three
 * parts, jobs_running, jobs_succeeded, jobs_failed, jobs_cancelled,
 * jobs_finished_last_minute, oldest_ready_age_seconds) and the counters
 * jobs_succeeded_total, jobs_failed_total, jobs_cancelled_total; then,
 * with queue NULL, the background workers: how many are in each state
 * (workers_starting, workers_idle, workers_running_sql,
 * workers_running_shell), the jobs they have done since they started
 * (workers_jobs_done_total) and how long the longest running job has run
 * (workers_longest_job_seconds).  Writes nothing: it works on a standby.
 */
Datum
procq_metrics(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	pq_connect();
	n = pq_exec(&stmt_metrics, NULL, NULL, 0);
	for (int r = 0; r < n; r++)
	{
		Datum		values[3];
		bool		nulls[3];

		for (int c = 0; c < 3; c++)
			values[c] = pq_get_attr(r, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pq_finish();
	return (Datum) 0;
}
