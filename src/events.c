/*-------------------------------------------------------------------------
 *
 * events.c
 *	  The history of the jobs: procq.job_events, written by the statement
 *	  triggers of procq.jobs, and read by procq.job_history(job_id).
 *
 * Where events come from.  Every change of a job's status passes through
 * an UPDATE of procq.jobs: the API's own statements, the background
 * workers' claims and outcomes, the cascades the bookkeeping makes
 * (src/triggers.c: they fire the triggers of procq.jobs too), and a DBA's
 * UPDATE.  So the AFTER ... FOR EACH STATEMENT triggers of procq.jobs see
 * every change, with the statement's old and new rows in its transition
 * tables, and write one event per changed row in one pass per statement
 * (a batch of 100 costs one statement, not 100).  The trigger on UPDATE
 * sorts before jobs_status_changed, so the events of a statement come
 * before those of the cascades its bookkeeping makes.  Every job that
 * defer, defer_jobs or defer_workflow inserts is 'deferred' (they run
 * their INSERT through pq_events_run_as); other inserts are not: a
 * pg_restore puts dumped jobs back with COPY, and their history comes back
 * from the dump of procq.job_events (a 'deferred' event then would come
 * after the job's end).
 *
 * The event of a change, from the old and new status (and attempts):
 *
 *	todo -> doing							fetched
 *	-> succeeded							succeeded
 *	-> failed								failed (for good)
 *	doing -> todo, attempts went down		released (release_job, a worker's
 *											clean stop)
 *	doing -> todo/failed in recover_job		stalled (recover_stalled, the
 *											workers' orphan recovery)
 *	doing -> todo otherwise					failed (status todo: retried later)
 *	other -> todo							retried (retry_job, the
 *											descendants it requeues, a DBA)
 *	-> cancelled							cancelled (cancel_job, abort,
 *											cascades, cancel_workflow, a
 *											'failure' job not needed)
 *
 * The events of a job go when it goes: the trigger on DELETE removes the
 * events of the deleted jobs in one statement (procq.purge, the retention
 * pass and a DBA's DELETE alike), and one on TRUNCATE empties the table.
 *
 * Global state: event_cause, the event that the statement being run by
 * pq_events_run_as (this backend) stands for ('deferred' for the API's
 * inserts, 'stalled' for recovery), NULL otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "authz.h"
#include "events.h"
#include "guc.h"
#include "spi_exec.h"

PG_FUNCTION_INFO_V1(procq_job_events_record);
PG_FUNCTION_INFO_V1(procq_job_events_forget);
PG_FUNCTION_INFO_V1(procq_job_history);

/*
 * The event that the rows a statement takes from doing stand for, while
 * pq_events_run_as runs it; NULL otherwise.
 */
static const char *event_cause = NULL;

static PQStatement stmt_forget = PQ_STATEMENT(
	"DELETE FROM procq.job_events WHERE job_id = ANY ($1)",
	1, INT8ARRAYOID);

static PQStatement stmt_forget_all = PQ_STATEMENT(
	"TRUNCATE procq.job_events", 0);

static PQStatement stmt_history = PQ_STATEMENT(
	"SELECT * FROM procq.job_events WHERE job_id = $1 ORDER BY id",
	1, INT8OID);

/*
 * The events of one statement, column by column, as the INSERT takes them.
 */
typedef struct EventBatch
{
	int			n;
	int			size;
	Datum	   *job_id;
	Datum	   *event;
	Datum	   *status;			/* procq.job_status values */
	Datum	   *attempt;
	Datum	   *worker;
	bool	   *worker_null;
	Datum	   *error;
	bool	   *error_null;
} EventBatch;

/*
 * batch_init prepares room for size events.
 */
static void
batch_init(EventBatch *batch, int size)
{
	size = Max(size, 1);
	batch->n = 0;
	batch->size = size;
	batch->job_id = palloc(sizeof(Datum) * size);
	batch->event = palloc(sizeof(Datum) * size);
	batch->status = palloc(sizeof(Datum) * size);
	batch->attempt = palloc(sizeof(Datum) * size);
	batch->worker = palloc(sizeof(Datum) * size);
	batch->worker_null = palloc(sizeof(bool) * size);
	batch->error = palloc(sizeof(Datum) * size);
	batch->error_null = palloc(sizeof(bool) * size);
}

/*
 * copy_text returns a copy of a text column of the slot (the slot's tuple
 * is only valid until the next read), or sets *isnull.
 */
static Datum
copy_text(TupleTableSlot *slot, int att, bool *isnull)
{
	Datum		d = slot_getattr(slot, att, isnull);

	return *isnull ? (Datum) 0 : datumCopy(d, false, -1);
}

/* The attribute numbers of the columns of procq.jobs that events read. */
typedef struct JobColumns
{
	int			id;
	int			status;
	int			attempts;
	int			worker;
	int			error;
} JobColumns;

/*
 * job_columns finds the columns events read in procq.jobs's descriptor.
 */
static JobColumns
job_columns(TupleDesc desc)
{
	JobColumns	c;

	c.id = SPI_fnumber(desc, "id");
	c.status = SPI_fnumber(desc, "status");
	c.attempts = SPI_fnumber(desc, "attempts");
	c.worker = SPI_fnumber(desc, "worker");
	c.error = SPI_fnumber(desc, "error");
	return c;
}

/*
 * status_label returns the label of a procq.job_status value.
 */
static char *
status_label(Datum status)
{
	return DatumGetCString(DirectFunctionCall1(enum_out, status));
}

/*
 * event_of names the event of a change of status from old_status to
 * new_status (see the table at the top of this file), in which the
 * attempts went from old_attempts to new_attempts.
 */
static const char *
event_of(const char *old_status, const char *new_status,
		 int32 old_attempts, int32 new_attempts)
{
	bool		was_doing = strcmp(old_status, "doing") == 0;

	if (strcmp(new_status, "doing") == 0)
		return "fetched";
	if (strcmp(new_status, "succeeded") == 0)
		return "succeeded";
	if (strcmp(new_status, "cancelled") == 0)
		return "cancelled";
	if (was_doing && strcmp(new_status, "todo") == 0 && new_attempts < old_attempts)
		return "released";
	if (was_doing && event_cause != NULL && strcmp(event_cause, PQ_EVENT_DEFERRED) != 0)
		return event_cause;
	if (strcmp(new_status, "failed") == 0)
		return "failed";
	/*
	 * Back to todo: from doing, the attempt ended without success (with an
	 * error text or without one: finish_job(id, 'failed') need not give
	 * one), so it is a failed attempt; from failed or cancelled, a retry.
	 */
	if (was_doing)
		return "failed";
	return "retried";
}

/*
 * The identity sequence of procq.job_events.id, for the table of that oid
 * (found again when the extension was installed anew).
 */
static Oid	events_relid = InvalidOid;
static Oid	events_seqid = InvalidOid;

/*
 * insert_events writes the events of a batch into procq.job_events, at one
 * time, by the session's role: straight into the heap and its indexes, as
 * the catalogs are written (no statement to plan and run per batch, no
 * privilege check: procq writes its own table).  Every column is set, the
 * id from its identity sequence; a column a DBA added is NULL, and a
 * trigger on procq.job_events does not fire.
 */
static void
insert_events(EventBatch *batch)
{
	Oid			nsp = get_namespace_oid("procq", false);
	Oid			relid = get_relname_relid("job_events", nsp);
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	CommandId	cid = GetCurrentCommandId(true);
	Datum		at = TimestampTzGetDatum(GetCurrentTimestamp());
	Datum		by_role = ObjectIdGetDatum(GetOuterUserId());
	int			col_id,
				col_job,
				col_at,
				col_event,
				col_status,
				col_attempt,
				col_worker,
				col_error,
				col_role;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table procq.job_events does not exist"),
				 errhint("Update the extension with ALTER EXTENSION procq UPDATE.")));
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	col_id = SPI_fnumber(desc, "id");
	col_job = SPI_fnumber(desc, "job_id");
	col_at = SPI_fnumber(desc, "at");
	col_event = SPI_fnumber(desc, "event");
	col_status = SPI_fnumber(desc, "status");
	col_attempt = SPI_fnumber(desc, "attempt");
	col_worker = SPI_fnumber(desc, "worker");
	col_error = SPI_fnumber(desc, "error");
	col_role = SPI_fnumber(desc, "by_role");
	if (col_id <= 0 || col_job <= 0 || col_at <= 0 || col_event <= 0 ||
		col_status <= 0 || col_attempt <= 0 || col_worker <= 0 ||
		col_error <= 0 || col_role <= 0)
		elog(ERROR, "procq.job_events does not have the columns of procq 1.1");
	if (events_relid != relid)
	{
		events_seqid = getIdentitySequence(relid, col_id, false);
		events_relid = relid;
	}

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = table_slot_create(rel, NULL);

	for (int i = 0; i < batch->n; i++)
	{
		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
		slot->tts_values[col_id - 1] = Int64GetDatum(nextval_internal(events_seqid, false));
		slot->tts_isnull[col_id - 1] = false;
		slot->tts_values[col_job - 1] = batch->job_id[i];
		slot->tts_isnull[col_job - 1] = false;
		slot->tts_values[col_at - 1] = at;
		slot->tts_isnull[col_at - 1] = false;
		slot->tts_values[col_event - 1] = batch->event[i];
		slot->tts_isnull[col_event - 1] = false;
		slot->tts_values[col_status - 1] = batch->status[i];
		slot->tts_isnull[col_status - 1] = false;
		slot->tts_values[col_attempt - 1] = batch->attempt[i];
		slot->tts_isnull[col_attempt - 1] = false;
		slot->tts_values[col_worker - 1] = batch->worker[i];
		slot->tts_isnull[col_worker - 1] = batch->worker_null[i];
		slot->tts_values[col_error - 1] = batch->error[i];
		slot->tts_isnull[col_error - 1] = batch->error_null[i];
		slot->tts_values[col_role - 1] = by_role;
		slot->tts_isnull[col_role - 1] = false;
		ExecStoreVirtualTuple(slot);

		table_tuple_insert(rel, slot, cid, 0, NULL);
		(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
	}

	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

/*
 * open_reader starts reading a transition table with a read pointer of its
 * own (the bookkeeping trigger reads the same tables), into a new slot.
 */
static int
open_reader(Tuplestorestate *store, TupleDesc desc, TupleTableSlot **slot)
{
	int			ptr = tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(store, ptr);
	tuplestore_rescan(store);
	*slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	return ptr;
}

/*
 * read_next reads the next row of a transition table into slot; false
 * after the last.
 */
static bool
read_next(Tuplestorestate *store, int ptr, TupleTableSlot *slot)
{
	tuplestore_select_read_pointer(store, ptr);
	return tuplestore_gettupleslot(store, true, false, slot);
}

/*
 * inserted_events adds a 'deferred' event for each inserted job (its
 * status is todo, or cancelled when a parent had already failed).
 */
static void
inserted_events(EventBatch *batch, Tuplestorestate *news, TupleDesc desc)
{
	JobColumns	c = job_columns(desc);
	TupleTableSlot *slot;
	int			ptr = open_reader(news, desc, &slot);

	while (read_next(news, ptr, slot))
	{
		bool		isnull;
		int			i;

		if (batch->n == batch->size)
			break;				/* cannot happen: sized from the table */
		i = batch->n++;
		batch->job_id[i] = Int64GetDatum(DatumGetInt64(slot_getattr(slot, c.id, &isnull)));
		batch->event[i] = CStringGetTextDatum("deferred");
		batch->status[i] = slot_getattr(slot, c.status, &isnull);
		batch->attempt[i] = slot_getattr(slot, c.attempts, &isnull);
		batch->worker[i] = copy_text(slot, c.worker, &batch->worker_null[i]);
		batch->error[i] = copy_text(slot, c.error, &batch->error_null[i]);
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * updated_events adds an event for each row whose status the statement
 * changed.  The old and the new table hold the rows in the same order.
 */
static void
updated_events(EventBatch *batch, Tuplestorestate *olds, Tuplestorestate *news,
			   TupleDesc desc)
{
	JobColumns	c = job_columns(desc);
	TupleTableSlot *old_slot;
	TupleTableSlot *new_slot;
	int			old_ptr = open_reader(olds, desc, &old_slot);
	int			new_ptr = open_reader(news, desc, &new_slot);

	while (read_next(olds, old_ptr, old_slot) && read_next(news, new_ptr, new_slot))
	{
		bool		isnull;
		Datum		old_status = slot_getattr(old_slot, c.status, &isnull);
		Datum		new_status = slot_getattr(new_slot, c.status, &isnull);
		char	   *old_label;
		char	   *new_label;
		int32		old_attempts;
		int32		new_attempts;
		bool		was_doing;
		const char *event;
		int			i;

		if (DatumGetObjectId(old_status) == DatumGetObjectId(new_status))
			continue;
		if (batch->n == batch->size)
			break;				/* cannot happen: sized from the table */
		old_label = status_label(old_status);
		new_label = status_label(new_status);
		old_attempts = DatumGetInt32(slot_getattr(old_slot, c.attempts, &isnull));
		new_attempts = DatumGetInt32(slot_getattr(new_slot, c.attempts, &isnull));
		was_doing = strcmp(old_label, "doing") == 0;

		i = batch->n++;
		batch->job_id[i] = Int64GetDatum(DatumGetInt64(slot_getattr(new_slot, c.id, &isnull)));
		batch->status[i] = new_status;
		batch->error[i] = copy_text(new_slot, c.error, &batch->error_null[i]);
		event = event_of(old_label, new_label, old_attempts, new_attempts);
		batch->event[i] = CStringGetTextDatum(event);
		/* the attempt that ended or was handed back, or the one that starts */
		batch->attempt[i] = Int32GetDatum(strcmp(event, "released") == 0
										  ? old_attempts : new_attempts);
		/* who ran it (a put-back job loses its worker), or runs it now */
		if (was_doing)
			batch->worker[i] = copy_text(old_slot, c.worker, &batch->worker_null[i]);
		else if (strcmp(new_label, "doing") == 0)
			batch->worker[i] = copy_text(new_slot, c.worker, &batch->worker_null[i]);
		else
			batch->worker_null[i] = true;
		/* fetched, released and retried events carry no error */
		if (strcmp(event, "fetched") == 0 || strcmp(event, "released") == 0 ||
			strcmp(event, "retried") == 0 || strcmp(event, "succeeded") == 0)
			batch->error_null[i] = true;
	}
	ExecDropSingleTupleTableSlot(old_slot);
	ExecDropSingleTupleTableSlot(new_slot);
}

/*
 * procq.job_events_record(): AFTER INSERT and AFTER UPDATE ON procq.jobs
 * FOR EACH STATEMENT, with the statement's rows (procq 1.1 only).
 *
 * Writes an event for each job the statement inserted, and for each job
 * whose status it changed, in one pass; nothing while
 * procq.record_events is off, and no statement at all when no status
 * changed (a heartbeat, a lock hand-off, a count of pending parents).
 */
Datum
procq_job_events_record(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	EventBatch	batch;
	Tuplestorestate *news;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL ||
		(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && trigdata->tg_oldtable == NULL) ||
		!(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("procq.job_events_record must be fired as an AFTER INSERT or UPDATE ... FOR EACH STATEMENT trigger with transition tables")));

	if (!pq_record_events)
		return PointerGetDatum(NULL);

	desc = trigdata->tg_relation->rd_att;
	news = trigdata->tg_newtable;
	/*
	 * Only the API's inserts are deferrals: pg_restore puts dumped jobs back
	 * with COPY, and their history comes back from the dump of
	 * procq.job_events itself.
	 */
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) &&
		(event_cause == NULL || strcmp(event_cause, PQ_EVENT_DEFERRED) != 0))
		return PointerGetDatum(NULL);

	batch_init(&batch, (int) tuplestore_tuple_count(news));
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		inserted_events(&batch, news, desc);
	else
		updated_events(&batch, trigdata->tg_oldtable, news, desc);

	if (batch.n > 0)
		insert_events(&batch);
	return PointerGetDatum(NULL);
}

/*
 * procq.job_events_forget(): AFTER DELETE ... FOR EACH STATEMENT (with the
 * deleted rows) and AFTER TRUNCATE ON procq.jobs.
 *
 * The events of the deleted jobs go, in one statement, whatever
 * procq.record_events says: no history is left that procq.job_history
 * could never read again.
 */
Datum
procq_job_events_forget(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	Tuplestorestate *olds;
	TupleTableSlot *slot;
	int			ptr;
	int			id_att;
	int			n = 0;
	int64		count;
	Datum	   *ids;
	Datum		v[1];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) ||
		  (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) && trigdata->tg_oldtable != NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("procq.job_events_forget must be fired as an AFTER DELETE ... FOR EACH STATEMENT trigger with transition tables, or AFTER TRUNCATE")));

	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		pq_connect();
		pq_exec(&stmt_forget_all, NULL, NULL, 0);
		pq_finish();
		return PointerGetDatum(NULL);
	}

	olds = trigdata->tg_oldtable;
	count = tuplestore_tuple_count(olds);
	if (count == 0)
		return PointerGetDatum(NULL);
	desc = trigdata->tg_relation->rd_att;
	id_att = SPI_fnumber(desc, "id");
	ids = palloc(sizeof(Datum) * count);
	ptr = open_reader(olds, desc, &slot);
	while (n < count && read_next(olds, ptr, slot))
	{
		bool		isnull;

		ids[n++] = Int64GetDatum(DatumGetInt64(slot_getattr(slot, id_att, &isnull)));
	}
	ExecDropSingleTupleTableSlot(slot);

	v[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
	pq_connect();
	pq_exec(&stmt_forget, v, NULL, 0);
	pq_finish();
	return PointerGetDatum(NULL);
}

/*
 * pq_events_run_as runs stmt (as pq_exec does) so that the jobs it takes
 * from doing are recorded as event (e.g. 'stalled') rather than by the
 * change alone; returns pq_exec's result.
 */
int
pq_events_run_as(const char *event, PQStatement *stmt, Datum *values,
				 const char *nulls)
{
	const char *volatile saved = event_cause;
	volatile int result = 0;

	event_cause = event;
	PG_TRY();
	{
		result = pq_exec(stmt, values, nulls, 0);
	}
	PG_FINALLY();
	{
		event_cause = saved;
	}
	PG_END_TRY();
	return result;
}

/*
 * procq.job_history(job_id bigint) returns setof procq.job_events
 *
 * The job's events, oldest first.  P0002 when there is no such job (its
 * events went with it), 42501 when the caller may not act on it, as
 * procq.get_job.  A job deferred while procq.record_events was off may
 * have none.
 */
Datum
procq_job_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		v[1];
	int			nrows;

	InitMaterializedSRF(fcinfo, 0);
	pq_require_arg(fcinfo, 0, "job_id");
	v[0] = PG_GETARG_DATUM(0);

	pq_connect();
	pq_require_job_access_by_id(PG_GETARG_INT64(0));
	nrows = pq_exec(&stmt_history, v, NULL, 0);
	for (int i = 0; i < nrows; i++)
	{
		Datum		values[16];
		bool		nulls[16];
		int			natts = SPI_tuptable->tupdesc->natts;

		if (natts > lengthof(values) || natts != rsinfo->setDesc->natts)
			elog(ERROR, "procq.job_events does not have the columns procq.job_history returns");
		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pq_finish();
	PG_RETURN_VOID();
}
