/*-------------------------------------------------------------------------
 *
 * ticks.c
 *	  procq.defer_workflow_once: a workflow deferred at most once per tick
 *	  of a schedule (issue 10, pairing with pg_cron).
 *
 * A scheduler such as pg_cron runs a command per tick; the command may run
 * twice for one tick (the schedule was changed and fires again, the server
 * restarted mid-tick and the command is run by hand or by a catch-up, two
 * schedulers overlap).  A queueing_lock cannot tell: it holds only while a
 * job is todo, so a tick that fires again after the first run finished
 * would defer again.  So the tick is remembered durably: a row of
 * procq.workflow_ticks, keyed by (deferred_by, tick), inserted in the same
 * statement as the workflow's jobs.  Both commit together or not at all;
 * a concurrent call for the same tick waits on the key for the first one's
 * transaction, and then defers nothing.  Keyed by the calling role, so that
 * no role can take another's tick.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "args.h"
#include "defer.h"
#include "spi_exec.h"
#include "workflow.h"
#include "workflows.h"

PG_FUNCTION_INFO_V1(procq_defer_workflow_once);

/*
 * Claims a tick for a role: one row, or none when the tick was claimed
 * already (committed, or by a transaction still open, which the insert
 * waits for: if that one rolls back, this one claims it).
 */
static PQStatement stmt_claim_tick = PQ_STATEMENT(
	"INSERT INTO procq.workflow_ticks (deferred_by, tick) VALUES ($1, $2)"
	" ON CONFLICT DO NOTHING RETURNING true",
	2, REGROLEOID, TEXTOID);

/* Records the workflow a claimed tick deferred. */
static PQStatement stmt_record_tick = PQ_STATEMENT(
	"UPDATE procq.workflow_ticks SET workflow_id = $3"
	" WHERE deferred_by = $1 AND tick = $2",
	3, REGROLEOID, TEXTOID, INT8OID);

/*
 * procq.defer_workflow_once(tick text, steps jsonb, workflow_id bigint)
 *	 returns bigint
 *
 * Defers steps as procq.defer_workflow does (into a new workflow, or
 * workflow_id's) unless the calling role has deferred tick before; returns
 * the workflow's id, or NULL when the tick was deferred already: then
 * nothing is deferred, and the steps are only checked to be a non-empty
 * array (the schedule's command may have changed them since the tick was
 * deferred).
 */
Datum
procq_defer_workflow_once(PG_FUNCTION_ARGS)
{
	text	   *tick;
	Jsonb	   *steps;
	int64		workflow_id = PQ_WORKFLOW_OF_BATCH;
	Datum		values[3];
	int			nsteps;
	char	  **keys;
	int64	   *job_ids;
	int64		deferred;
	bool		claimed;

	pq_require_arg(fcinfo, 0, "tick");
	pq_require_arg(fcinfo, 1, "steps");
	tick = PG_GETARG_TEXT_PP(0);
	steps = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		workflow_id = pq_workflow_arg(PG_GETARG_INT64(2));

	if (VARSIZE_ANY_EXHDR(tick) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tick must not be empty"),
				 errhint("Name the tick by its schedule and period, e.g. 'nightly:' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD').")));
	pq_check_name_length(tick, "tick");
	if (!JB_ROOT_IS_ARRAY(steps) || JB_ROOT_IS_SCALAR(steps))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps must be a JSON array of step objects")));
	if (JB_ROOT_COUNT(steps) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps must not be empty"),
				 errdetail("A tick is recorded with the workflow it deferred.")));

	values[0] = ObjectIdGetDatum(GetUserId());
	values[1] = PointerGetDatum(tick);
	pq_connect();
	claimed = pq_exec(&stmt_claim_tick, values, NULL, 1) > 0;
	pq_finish();
	if (!claimed)
		PG_RETURN_NULL();

	deferred = pq_defer_workflow(steps, workflow_id, &nsteps, &keys, &job_ids);

	values[2] = Int64GetDatum(deferred);
	pq_connect();
	pq_exec(&stmt_record_tick, values, NULL, 0);
	pq_finish();

	PG_RETURN_INT64(deferred);
}
