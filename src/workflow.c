/*-------------------------------------------------------------------------
 *
 * workflow.c
 *	  procq.defer_workflow: a whole DAG of jobs in one call.
 *
 * The steps are parsed and checked completely (fields, keys, references,
 * cycles) before the first job is inserted; then all jobs are inserted as
 * one batch (pq_defer_batch: one INSERT for the jobs, one for the
 * dependency rows), in a topological order, so that every parent gets a
 * lower id than its children.  Any error raised on the way aborts the
 * statement, so a workflow is inserted whole or not at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "args.h"
#include "defer.h"
#include "spi_exec.h"
#include "workflow.h"
#include "workflows.h"

PG_FUNCTION_INFO_V1(procq_defer_workflow);

/* One parsed step. */
typedef struct Step
{
	char	   *key;
	PQJobSpec	spec;
	char	  **parent_keys;	/* depends_on entries naming steps */
	int			nparent_keys;
	int64	   *parent_ids;		/* depends_on entries naming existing jobs */
	int			nparent_ids;
	int		   *parent_steps;	/* parent_keys resolved to step indexes */
	int64		job_id;			/* once inserted */
} Step;

/* A key and the index of its step, for sorting and lookup. */
typedef struct KeyIndex
{
	const char *key;
	int			index;
} KeyIndex;

/* What the error context callback says about the step being handled. */
typedef struct StepContext
{
	int			nth;			/* counts from 1; 0 when no step is */
	const char *key;
	/* while the steps are inserted: */
	struct Step *steps;
	int		   *order;			/* batch position -> step index */
	int			current;		/* batch position being checked, or -1 */
} StepContext;

/*
 * step_context adds "workflow step N (key ...)" to errors raised while a
 * step is validated or inserted (errors of defer's own checks, or of a
 * parent that does not exist), so the user knows which step to fix.
 */
static void
step_context(void *arg)
{
	StepContext *ctx = (StepContext *) arg;

	if (ctx->order != NULL && ctx->current >= 0)
		errcontext("workflow step %d (key \"%s\")", ctx->order[ctx->current] + 1,
				   ctx->steps[ctx->order[ctx->current]].key);
	else if (ctx->nth > 0)
		errcontext("workflow step %d (key \"%s\")", ctx->nth, ctx->key);
}

static void step_error(int nth, const char *key, const char *problem) pg_attribute_noreturn();

/*
 * step_error reports a malformed step; nth counts from 1.
 */
static void
step_error(int nth, const char *key, const char *problem)
{
	if (key != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid workflow step %d (key \"%s\"): %s", nth, key, problem)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid workflow step %d: %s", nth, problem)));
}

/*
 * json_string returns a JSON string value as a C string, or NULL for a
 * JSON null when nullable; anything else is an error.
 */
static char *
json_get_string(JsonbValue *v, int nth, const char *key, const char *field, bool nullable)
{
	if (v->type == jbvNull && nullable)
		return NULL;
	if (v->type != jbvString)
		step_error(nth, key, psprintf("\"%s\" must be a string", field));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * json_int64 returns a JSON number that must be a whole number within
 * [min, max].
 */
static int64
json_int64(JsonbValue *v, int nth, const char *key, const char *field,
		   int64 min, int64 max)
{
	char	   *digits;
	char	   *end;
	long long	value;

	if (v->type != jbvNumeric)
		step_error(nth, key, psprintf("\"%s\" must be a number", field));
	digits = DatumGetCString(DirectFunctionCall1(numeric_out,
												 NumericGetDatum(v->val.numeric)));
	errno = 0;
	value = strtoll(digits, &end, 10);
	if (*end != '\0' || errno != 0 || value < min || value > max)
		step_error(nth, key, psprintf("\"%s\" must be a whole number between %lld and %lld, not %s",
									  field, (long long) min, (long long) max, digits));
	return (int64) value;
}

/*
 * parse_depends_on reads a step's depends_on array: strings name other
 * steps' keys, numbers name existing jobs.
 */
static void
parse_depends_on(JsonbValue *v, int nth, Step *step)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	int			count;

	if (v->type == jbvNull)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		step_error(nth, step->key, "\"depends_on\" must be an array of step keys and job ids");

	count = JsonContainerSize(v->val.binary.data);
	step->parent_keys = palloc(sizeof(char *) * Max(count, 1));
	step->parent_ids = palloc(sizeof(int64) * Max(count, 1));

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (elem.type == jbvString)
			step->parent_keys[step->nparent_keys++] =
				pnstrdup(elem.val.string.val, elem.val.string.len);
		else if (elem.type == jbvNumeric)
			step->parent_ids[step->nparent_ids++] =
				json_int64(&elem, nth, step->key, "depends_on", 1, PG_INT64_MAX);
		else
			step_error(nth, step->key,
					   "\"depends_on\" may only hold step keys (strings) and job ids (numbers)");
	}
}

/*
 * parse_step reads one step object into *step, with defer's defaults for
 * the fields it leaves out.  Unknown fields are errors: a typo must not
 * silently drop a dependency.
 */
static void
parse_step(JsonbValue *obj, int nth, Step *step)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *task = NULL;

	if (obj->type != jbvBinary || !JsonContainerIsObject(obj->val.binary.data))
		step_error(nth, NULL, "a step must be a JSON object");

	/* Find the key first, so that every later error can name it. */
	{
		JsonbValue *keyv = getKeyJsonValueFromContainer(obj->val.binary.data,
														"key", 3, NULL);

		if (keyv == NULL)
			step_error(nth, NULL, "\"key\" is missing");
		step->key = json_get_string(keyv, nth, NULL, "key", false);
		if (step->key[0] == '\0')
			step_error(nth, NULL, "\"key\" must not be empty");
	}

	step->spec.args = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	step->spec.queue = cstring_to_text("default");
	step->spec.max_attempts = 1;

	it = JsonbIteratorInit(obj->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *field;

		if (tok != WJB_KEY)
			continue;
		field = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);

		if (strcmp(field, "key") == 0)
			continue;
		else if (strcmp(field, "task") == 0)
			task = json_get_string(&v, nth, step->key, field, false);
		else if (strcmp(field, "args") == 0)
		{
			if (v.type != jbvNull)
				step->spec.args = JsonbValueToJsonb(&v);
		}
		else if (strcmp(field, "queue") == 0)
			step->spec.queue = cstring_to_text(json_get_string(&v, nth, step->key, field, false));
		else if (strcmp(field, "priority") == 0)
			step->spec.priority = (int32) json_int64(&v, nth, step->key, field, PG_INT32_MIN, PG_INT32_MAX);
		else if (strcmp(field, "scheduled_at") == 0)
		{
			char	   *when = json_get_string(&v, nth, step->key, field, true);

			if (when != NULL)
			{
				step->spec.has_scheduled_at = true;
				step->spec.scheduled_at =
					DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
															CStringGetDatum(when),
															ObjectIdGetDatum(InvalidOid),
															Int32GetDatum(-1)));
			}
		}
		else if (strcmp(field, "depends_on") == 0)
			parse_depends_on(&v, nth, step);
		else if (strcmp(field, "run_after") == 0)
		{
			char	   *value = json_get_string(&v, nth, step->key, field, true);

			if (value != NULL)
			{
				step->spec.run_after = pq_run_after_from_text(cstring_to_text(value));
				if (step->spec.run_after == PQ_RUN_AFTER_INVALID)
					step_error(nth, step->key,
							   psprintf("\"run_after\" must be \"success\", \"completion\" or "
										"\"failure\", not \"%s\"", value));

				/*
				 * procq 1.0's table, which this library serves until the
				 * update, has no run_after: the step would run as a
				 * 'success' job.
				 */
				if (step->spec.run_after != PQ_RUN_AFTER_SUCCESS && !pq_schema_has_workflows())
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("run_after needs version 1.1 of extension procq"),
							 errdetail("Workflow step %d (key \"%s\") has run_after \"%s\".",
									   nth, step->key, value),
							 errhint("Run ALTER EXTENSION procq UPDATE.")));
			}
		}
		else if (strcmp(field, "max_attempts") == 0)
			step->spec.max_attempts = (int32) json_int64(&v, nth, step->key, field, PG_INT32_MIN, PG_INT32_MAX);
		else if (strcmp(field, "lock") == 0 || strcmp(field, "queueing_lock") == 0)
		{
			char	   *value = json_get_string(&v, nth, step->key, field, true);
			text	   *t = value ? cstring_to_text(value) : NULL;

			if (field[0] == 'l')
				step->spec.lock = t;
			else
				step->spec.queueing_lock = t;
		}
		else
			step_error(nth, step->key,
					   psprintf("unknown field \"%s\" (known: key, task, args, queue, priority, "
								"scheduled_at, depends_on, max_attempts, lock, queueing_lock, "
								"run_after)",
								field));
	}

	if (task == NULL)
		step_error(nth, step->key, "\"task\" is missing");
	step->spec.task = cstring_to_text(task);
	step->spec.step_key = cstring_to_text(step->key);
}

/*
 * cmp_key_index orders KeyIndex entries by key.
 */
static int
cmp_key_index(const void *a, const void *b)
{
	return strcmp(((const KeyIndex *) a)->key, ((const KeyIndex *) b)->key);
}

/*
 * resolve_keys checks that keys are unique and that every key a step
 * depends on names a step, and fills in parent_steps.
 */
static void
resolve_keys(Step *steps, int nsteps)
{
	KeyIndex   *sorted = palloc(sizeof(KeyIndex) * Max(nsteps, 1));

	for (int i = 0; i < nsteps; i++)
	{
		sorted[i].key = steps[i].key;
		sorted[i].index = i;
	}
	qsort(sorted, nsteps, sizeof(KeyIndex), cmp_key_index);
	for (int i = 1; i < nsteps; i++)
		if (strcmp(sorted[i - 1].key, sorted[i].key) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("duplicate workflow step key \"%s\"", sorted[i].key),
					 errdetail("Steps %d and %d both use it.",
							   Min(sorted[i - 1].index, sorted[i].index) + 1,
							   Max(sorted[i - 1].index, sorted[i].index) + 1)));

	for (int i = 0; i < nsteps; i++)
	{
		Step	   *step = &steps[i];

		step->parent_steps = palloc(sizeof(int) * Max(step->nparent_keys, 1));
		for (int p = 0; p < step->nparent_keys; p++)
		{
			KeyIndex	probe = {step->parent_keys[p], 0};
			KeyIndex   *found = bsearch(&probe, sorted, nsteps, sizeof(KeyIndex),
										cmp_key_index);

			if (found == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("workflow step \"%s\" depends on unknown key \"%s\"",
								step->key, step->parent_keys[p]),
						 errhint("depends_on names other steps by their key, or existing jobs by id (a number).")));
			step->parent_steps[p] = found->index;
		}
	}
}

/*
 * topological_order returns the step indexes so that every step comes
 * after the steps it depends on, keeping the given order where it can
 * (Kahn's algorithm).  A cycle is an error naming the steps on or behind it.
 */
static int *
topological_order(Step *steps, int nsteps)
{
	int		   *waiting = palloc0(sizeof(int) * Max(nsteps, 1));
	int		   *nchildren = palloc0(sizeof(int) * Max(nsteps, 1));
	int		  **children = palloc0(sizeof(int *) * Max(nsteps, 1));
	int		   *order = palloc(sizeof(int) * Max(nsteps, 1));
	int			head = 0;
	int			tail = 0;

	for (int i = 0; i < nsteps; i++)
		for (int p = 0; p < steps[i].nparent_keys; p++)
			nchildren[steps[i].parent_steps[p]]++;
	for (int i = 0; i < nsteps; i++)
	{
		children[i] = palloc(sizeof(int) * Max(nchildren[i], 1));
		nchildren[i] = 0;
	}
	for (int i = 0; i < nsteps; i++)
		for (int p = 0; p < steps[i].nparent_keys; p++)
		{
			int			parent = steps[i].parent_steps[p];

			children[parent][nchildren[parent]++] = i;
			waiting[i]++;
		}

	for (int i = 0; i < nsteps; i++)
		if (waiting[i] == 0)
			order[tail++] = i;
	while (head < tail)
	{
		int			s = order[head++];

		for (int c = 0; c < nchildren[s]; c++)
			if (--waiting[children[s][c]] == 0)
				order[tail++] = children[s][c];
	}

	if (tail < nsteps)
	{
		StringInfoData keys;
		int			listed = 0;

		initStringInfo(&keys);
		for (int i = 0; i < nsteps && listed < 10; i++)
			if (waiting[i] > 0)
				appendStringInfo(&keys, "%s\"%s\"", listed++ ? ", " : "", steps[i].key);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workflow steps depend on each other in a cycle"),
				 errdetail("Steps on or after the cycle: %s%s.", keys.data,
						   nsteps - tail > listed ? ", ..." : "")));
	}
	return order;
}

/*
 * pq_defer_workflow inserts the steps of json (an array of step objects,
 * see procq.defer_workflow below) as one workflow: workflow_id's, or a
 * new one when workflow_id is PQ_WORKFLOW_OF_BATCH.  Sets *nsteps, and
 * *keys and *job_ids (palloc'd, in the order of the steps); returns the
 * id of the workflow the jobs joined (for a new one, its first job's id),
 * or 0 when there were no steps.  Connects SPI itself; any error aborts
 * the statement, so the steps are inserted whole or not at all.
 * procq.defer_workflow_once (src/ticks.c) defers through it too.
 */
int64
pq_defer_workflow(Jsonb *json, int64 workflow_id, int *nsteps_out,
				  char ***keys_out, int64 **job_ids_out)
{
	int			nsteps;
	Step	   *steps;
	int		   *order;
	int		   *position;
	PQBatchJob *batch;
	StepContext ctx = {0};
	ErrorContextCallback errcallback;
	char	  **keys;
	int64	   *job_ids;

	if (!JB_ROOT_IS_ARRAY(json) || JB_ROOT_IS_SCALAR(json))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps must be a JSON array of step objects"),
				 errhint("Example: '[{\"key\": \"a\", \"task\": \"t\"}, {\"key\": \"b\", \"task\": \"t\", \"depends_on\": [\"a\"]}]'")));

	errcallback.callback = step_context;
	errcallback.arg = &ctx;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	nsteps = JB_ROOT_COUNT(json);
	steps = palloc0(sizeof(Step) * Max(nsteps, 1));
	for (int i = 0; i < nsteps; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&json->root, i);

		parse_step(elem, i + 1, &steps[i]);
		ctx.nth = i + 1;
		ctx.key = steps[i].key;
		pq_validate_spec(&steps[i].spec);
		ctx.nth = 0;
	}
	resolve_keys(steps, nsteps);
	order = topological_order(steps, nsteps);

	/*
	 * All steps in one batch, in topological order: each step's parents
	 * among the steps come before it and get lower ids.
	 */
	batch = palloc0(sizeof(PQBatchJob) * Max(nsteps, 1));
	position = palloc(sizeof(int) * Max(nsteps, 1));
	for (int o = 0; o < nsteps; o++)
		position[order[o]] = o;
	for (int o = 0; o < nsteps; o++)
	{
		Step	   *step = &steps[order[o]];

		step->spec.parents = step->parent_ids;
		step->spec.workflow_id = workflow_id;
		step->spec.nparents = step->nparent_ids;
		pq_sort_unique_ids(step->spec.parents, &step->spec.nparents);
		batch[o].spec = &step->spec;
		batch[o].batch_parents = palloc(sizeof(int) * Max(step->nparent_keys, 1));
		batch[o].nbatch_parents = step->nparent_keys;
		for (int p = 0; p < step->nparent_keys; p++)
			batch[o].batch_parents[p] = position[step->parent_steps[p]];
	}

	ctx.steps = steps;
	ctx.order = order;
	pq_connect();
	pq_defer_batch(batch, nsteps, &ctx.current);
	pq_finish();
	ctx.order = NULL;
	error_context_stack = errcallback.previous;
	for (int o = 0; o < nsteps; o++)
		steps[order[o]].job_id = batch[o].id;

	keys = palloc(sizeof(char *) * Max(nsteps, 1));
	job_ids = palloc(sizeof(int64) * Max(nsteps, 1));
	for (int i = 0; i < nsteps; i++)
	{
		keys[i] = steps[i].key;
		job_ids[i] = steps[i].job_id;
	}
	*nsteps_out = nsteps;
	*keys_out = keys;
	*job_ids_out = job_ids;
	if (nsteps == 0)
		return 0;
	return workflow_id == PQ_WORKFLOW_OF_BATCH ? batch[0].id : workflow_id;
}

/*
 * procq.defer_workflow(steps jsonb, workflow_id bigint)
 *	 returns table (key text, job_id bigint)
 *
 * steps is an array of objects, each with "key", "task" and any of defer's
 * optional fields; "depends_on" may name other steps' keys and existing job
 * ids.  Returns each step's key and job id, in the order of the steps.
 * All steps go into one workflow: a new one, named by the id of its first
 * job, or workflow_id, an existing one (procq 1.0's declaration has no
 * workflow_id, and its table no workflows).
 */
Datum
procq_defer_workflow(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		workflow_id;
	int			nsteps;
	char	  **keys;
	int64	   *job_ids;

	InitMaterializedSRF(fcinfo, 0);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("steps must not be null")));
	workflow_id = PQ_WORKFLOW_OF_BATCH;
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		workflow_id = pq_workflow_arg(PG_GETARG_INT64(1));
	(void) pq_defer_workflow(PG_GETARG_JSONB_P(0), workflow_id, &nsteps, &keys, &job_ids);

	for (int i = 0; i < nsteps; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(keys[i]);
		values[1] = Int64GetDatum(job_ids[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	return (Datum) 0;
}
