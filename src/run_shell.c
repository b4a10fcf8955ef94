/*-------------------------------------------------------------------------
 *
 * run_shell.c
 *	  The worker side of shell jobs.  A shell job is fetched and committed
 *	  as doing first, its program runs outside any transaction (shell.c),
 *	  and the outcome is recorded in a second transaction.  A shell job
 *	  whose worker died is put back by the workers (orphans.c); one whose
 *	  worker was stopped cleanly is put back by its worker, as if it had
 *	  not been taken.  An error while recording the outcome fails the job
 *	  with that error: a job never stays doing under a live worker.  A lock
 *	  timeout while recording it (procq.worker_lock_timeout) is no error
 *	  of the job: its outcome is kept and recorded later.  A worker that
 *	  must stop waits at most PQ_STOPPING_LOCK_TIMEOUT_MS for a lock to put
 *	  back or finish its job; if that is not enough, the job is recovered
 *	  as a dead worker's.
 *
 * Global state, in a worker process: the shell job in flight (fetched and
 * not yet finished), so that an error anywhere cannot strand it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"

#include "crash.h"
#include "guc.h"
#include "lifecycle.h"
#include "procq.h"
#include "run_shell.h"
#include "shell.h"
#include "shmem.h"
#include "worker_jobs.h"
#include "worker_xact.h"

/* How long a shell job's process group gets between SIGTERM and SIGKILL. */
#define PQ_SHELL_KILL_GRACE_MS 5000

/*
 * The longest environment string ("NAME=value" and its NUL) a program may
 * be given: Linux refuses a longer one at exec with E2BIG (MAX_ARG_STRLEN,
 * 32 pages of 4 kB; more with larger pages, never less).
 */
#define PQ_SHELL_MAX_ENV_STRING (32 * 4096)

/*
 * The lease of a shell job: longer than any timeout, since the workers
 * recover the jobs of a dead worker themselves (orphans.c).
 */
#define PQ_SHELL_LEASE_SECONDS (10 * 365 * 86400)

/* What shell_should_stop looks at, and what it decided. */
typedef struct ShellStopState
{
	int64		job_id;
	bool		killed_at_once; /* it answered PQ_SHELL_STOP_NOW */
} ShellStopState;

/* How a shell job ended, for procq.finish_job. */
typedef struct ShellOutcome
{
	const char *status;
	char	   *error;
} ShellOutcome;

/*
 * shell_should_stop tells pq_shell_run to stop the job's process group.
 * When the worker is told to exit (the server shuts down or restarts,
 * procq.workers was lowered, someone terminated it) or the postmaster
 * died, the group gets SIGKILL at once: the server must not wait for a
 * program that ignores SIGTERM, and the job is put back and runs again
 * anyway.  When cancel_job asks to abort the job, SIGTERM first, then
 * SIGKILL after PQ_SHELL_KILL_GRACE_MS, as on a timeout.
 */
static PQShellStop
shell_should_stop(void *arg)
{
	ShellStopState *state = (ShellStopState *) arg;

	if (ProcDiePending || !PostmasterIsAlive())
	{
		state->killed_at_once = true;
		return PQ_SHELL_STOP_NOW;
	}
	if (pq_slot_abort_requested(state->job_id))
		return PQ_SHELL_STOP;
	return PQ_SHELL_GO_ON;
}

/*
 * jsonb_string makes a jsonb string of len bytes of text.
 */
static Datum
jsonb_string(char *text, int len)
{
	JsonbValue	jbv;

	jbv.type = jbvString;
	jbv.val.string.val = text;
	jbv.val.string.len = len;
	return JsonbPGetDatum(JsonbValueToJsonb(&jbv));
}

/*
 * json_to_jsonb converts JSON text to jsonb, in a subtransaction: valid
 * JSON that jsonb still refuses ("\u0000", a number out of range) must not
 * cost the worker its life.  Returns false (and nothing) then.
 *
 * An ERROR resets the interrupt and critical-section holdoff counts before
 * it reaches PG_CATCH (errfinish), so the catch puts back the ones this
 * worker had: the worker holds cancel interrupts outside SQL handlers, and
 * a count left at zero would make the next handler's RESUME_CANCEL_INTERRUPTS
 * drive it below zero, keeping timeouts and aborts out of that handler.
 * The memory context and resource owner are put back too.
 */
static bool
json_to_jsonb(char *json, Datum *result)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	uint32		save_interrupt_holdoff = InterruptHoldoffCount;
	uint32		save_cancel_holdoff = QueryCancelHoldoffCount;
	uint32		save_crit_section = CritSectionCount;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		*result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		InterruptHoldoffCount = save_interrupt_holdoff;
		QueryCancelHoldoffCount = save_cancel_holdoff;
		CritSectionCount = save_crit_section;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return ok;
}

/*
 * valid_text makes len bytes of a program's output fit for a text column:
 * NUL bytes and bytes that are not valid in the database encoding (for
 * instance a character cut in two at the start of stderr's tail) become
 * '?'.
 */
static char *
valid_text(const char *bytes, size_t len)
{
	char	   *text = palloc(len + 1);
	int			encoding = GetDatabaseEncoding();
	size_t		i = 0;

	while (i < len)
	{
		int			clen = pg_encoding_mblen(encoding, bytes + i);

		if (bytes[i] != '\0' && i + clen <= len &&
			pg_encoding_verifymbchar(encoding, bytes + i, clen) == clen)
		{
			memcpy(text + i, bytes + i, clen);
			i += clen;
		}
		else
			text[i++] = '?';
	}
	text[len] = '\0';
	return text;
}

/*
 * shell_result makes the jobs.result of a shell job from its stdout: the
 * JSON it printed, or else its text as a JSON string (without one trailing
 * newline); NULL when it printed nothing.
 */
static bool
shell_result(PQShellResult *res, Datum *result)
{
	JsonLexContext *lex;
	size_t		len = res->out_len;

	if (len == 0)
		return false;
	if (memchr(res->out, '\0', len) == NULL &&
		pg_verify_mbstr(GetDatabaseEncoding(), res->out, len, true))
	{
		lex = makeJsonLexContextCstringLen(res->out, len, GetDatabaseEncoding(), false);
		if (!res->stdout_truncated && pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS &&
			json_to_jsonb(res->out, result))
			return true;
		if (res->out[len - 1] == '\n')
			len--;
		*result = jsonb_string(res->out, len);
		return true;
	}
	*result = jsonb_string("(binary output)", strlen("(binary output)"));
	return true;
}

/*
 * shell_outcome decides how a shell job ended: cancelled when it was
 * aborted (also when the abort came after the program ended: cancel_job
 * returned true), failed when it could not start, timed out, was killed
 * or exited non-zero (with the tail of its stderr), else succeeded (saying
 * so when its stdout was cut).
 */
static ShellOutcome
shell_outcome(PQWorkerJob *job, PQShellResult *res)
{
	ShellOutcome out = {"succeeded", NULL};

	if (pq_slot_settle_abort(job->id))
	{
		out.status = "cancelled";
		out.error = PQ_ABORTED_ERROR;
	}
	else if (res->start_error[0] != '\0')
	{
		out.status = "failed";
		out.error = pstrdup(res->start_error);
	}
	else if (res->timed_out || res->exit_code != 0)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		if (res->timed_out)
			appendStringInfo(&buf, "timed out after %lld ms", (long long) job->timeout_ms);
		else if (res->term_signal != 0)
			appendStringInfo(&buf, "killed by signal %d", res->term_signal);
		else
			appendStringInfo(&buf, "exit status %d", res->exit_code);
		if (res->err_len > 0)
			appendStringInfo(&buf, "\nstderr:\n%s", valid_text(res->err_tail, res->err_len));
		out.status = "failed";
		out.error = buf.data;
	}
	else if (res->stdout_truncated)
		out.error = psprintf("stdout was cut at %d kB (procq.shell_output_limit)",
							 pq_shell_output_limit);
	return out;
}

/*
 * run_program runs a shell job's program with its environment (job id,
 * task, and args when they fit in one environment string: see
 * PQ_SHELL_MAX_ENV_STRING; else PROCQ_ARGS is not set) and its args on
 * stdin, always, with the handler's timeout and procq.shell_output_limit,
 * and fills *res; *killed_at_once says whether its group got SIGKILL at
 * once because the worker is stopping (shell_should_stop).
 */
static void
run_program(PQWorkerJob *job, PQShellResult *res, bool *killed_at_once)
{
	ShellStopState stop = {job->id, false};
	char	  **argv;
	char		errbuf[256];
	char	   *env[4];
	char	   *args_text;
	size_t		args_len;

	*killed_at_once = false;
	args_text = JsonbToCString(NULL, &DatumGetJsonbP(job->args)->root,
							   VARSIZE(DatumGetPointer(job->args)));
	args_len = strlen(args_text);
	env[0] = psprintf("PROCQ_JOB_ID=%lld", (long long) job->id);
	env[1] = psprintf("PROCQ_TASK=%s", job->task);
	if (strlen("PROCQ_ARGS=") + args_len + 1 <= PQ_SHELL_MAX_ENV_STRING)
		env[2] = psprintf("PROCQ_ARGS=%s", args_text);
	else
		env[2] = NULL;
	env[3] = NULL;

	argv = pq_shell_split(job->command, errbuf, sizeof(errbuf));
	if (argv == NULL)
	{
		memset(res, 0, sizeof(*res));
		res->exit_code = -1;
		snprintf(res->start_error, sizeof(res->start_error), "invalid command: %s", errbuf);
		return;
	}
	pq_shell_run(argv, env, args_text, args_len,
				 (int) Min(job->timeout_ms, INT_MAX), PQ_SHELL_KILL_GRACE_MS,
				 (size_t) pq_shell_output_limit * 1024,
				 shell_should_stop, &stop, res);
	free(argv);
	*killed_at_once = stop.killed_at_once;
}

/* The shell job fetched and not yet finished (id 0: none), in TopMemoryContext. */
static PQWorkerJob in_flight;

/*
 * set_in_flight remembers job as the shell job in flight, or forgets it
 * (job NULL).
 */
static void
set_in_flight(PQWorkerJob *job)
{
	if (in_flight.lock)
		pfree(in_flight.lock);
	if (in_flight.queueing_lock)
		pfree(in_flight.queueing_lock);
	if (in_flight.error)
		pfree(in_flight.error);
	if (in_flight.has_result)
		pfree(DatumGetPointer(in_flight.result));
	memset(&in_flight, 0, sizeof(in_flight));
	if (job == NULL)
		return;
	in_flight.id = job->id;
	in_flight.attempts = job->attempts;
	in_flight.max_attempts = job->max_attempts;
	if (job->lock)
		in_flight.lock = MemoryContextStrdup(TopMemoryContext, job->lock);
	if (job->queueing_lock)
		in_flight.queueing_lock = MemoryContextStrdup(TopMemoryContext, job->queueing_lock);
}

/*
 * keep_outcome keeps the outcome of job, the shell job in flight, with it
 * (in TopMemoryContext), so that pq_shell_finish_in_flight records it
 * later: its recording waited too long for a lock.
 */
static void
keep_outcome(PQWorkerJob *job)
{
	in_flight.status = job->status;
	in_flight.error = job->error ? MemoryContextStrdup(TopMemoryContext, job->error) : NULL;
	in_flight.has_result = job->has_result;
	if (job->has_result)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		in_flight.result = datumCopy(job->result, false, -1);
		MemoryContextSwitchTo(old);
	}
}

/*
 * clean_up_after_error leaves a caught error behind, like the worker's
 * error recovery: the transaction aborted, the error state flushed, and
 * cancel interrupts held again (they only count while a SQL handler runs).
 */
static void
clean_up_after_error(void)
{
	HOLD_INTERRUPTS();
	disable_all_timeouts(false);
	AbortOutOfAnyTransaction();
	FlushErrorState();
	QueryCancelHoldoffCount = 1;
	RESUME_INTERRUPTS();
}

/*
 * record_outcome records the outcome of the shell job in flight, job, in
 * a transaction of its own; on error, the job is failed (or cancelled,
 * when it was aborted) with an error saying that its outcome could not be
 * recorded, and why.  If even that fails, the error goes up and the job
 * stays in flight: the worker tries again (pq_shell_finish_in_flight)
 * before it takes more work.  On a lock timeout, the outcome stays in
 * flight, to be recorded as it is then.  stopping: the worker must stop,
 * its lock waits are short (pq_stopping_lock_timeout).
 */
static void
record_outcome(PQWorkerJob *job, PQShellResult *res, ShellOutcome outcome,
			   MemoryContext jobcxt, bool stopping)
{
	char	   *volatile error = NULL;
	volatile bool lock_timeout = false;

	PG_TRY();
	{
		MemoryContext old;

		pq_begin_work("finishing a shell job");
		if (stopping)
			pq_stopping_lock_timeout();
		old = MemoryContextSwitchTo(jobcxt);
		job->status = outcome.status;
		job->error = outcome.error;
		if (strcmp(outcome.status, "succeeded") == 0)
			job->has_result = shell_result(res, &job->result);
		MemoryContextSwitchTo(old);
		(void) pq_record_outcomes(job, 1);
		pq_end_work();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(jobcxt);
		edata = CopyErrorData();
		clean_up_after_error();
		MemoryContextSwitchTo(jobcxt);
		lock_timeout = pq_is_lock_timeout(edata->sqlerrcode);
		error = psprintf("its outcome could not be recorded: %s", pq_error_text(edata));
	}
	PG_END_TRY();
	pq_shell_result_free(res);

	if (lock_timeout)
	{
		ereport(LOG,
				(errmsg("procq worker %d waited too long for a lock to record the outcome of shell job %lld: it tries again later",
						pq_my_slot + 1, (long long) job->id)));
		keep_outcome(job);
		return;
	}
	if (error != NULL)
	{
		ereport(WARNING,
				(errmsg("procq worker %d could not record the outcome of shell job %lld",
						pq_my_slot + 1, (long long) job->id),
				 errdetail_internal("%s", error)));
		pq_begin_work("failing a shell job");
		if (stopping)
			pq_stopping_lock_timeout();
		/* An abort settled as cancelled stays cancelled: cancel_job said so. */
		if (strcmp(outcome.status, "cancelled") != 0)
			job->status = "failed";
		job->has_result = false;
		job->error = error;
		(void) pq_record_outcomes(job, 1);
		pq_end_work();
	}
	set_in_flight(NULL);
}

/*
 * pq_shell_finish_in_flight records the outcome of the shell job in
 * flight that a lock timeout kept (see record_outcome), or fails the one
 * an error left, so that it never stays doing.
 */
void
pq_shell_finish_in_flight(void)
{
	if (in_flight.id == 0)
		return;
	if (in_flight.status == NULL)
	{
		in_flight.status = "failed";
		in_flight.error = MemoryContextStrdup(TopMemoryContext,
											  "its outcome could not be recorded: the worker met an error");
	}
	pq_begin_work("finishing a shell job");
	(void) pq_record_outcomes(&in_flight, 1);
	pq_end_work();
	set_in_flight(NULL);
}

/*
 * put_back_interrupted puts the shell job in flight back as if it had not
 * been taken, after a clean stop of the worker killed its program (at
 * once, with killed_at_once, which is logged); the stop itself (the
 * pending die) is processed afterwards.
 */
static void
put_back_interrupted(PQWorkerJob *job, bool killed_at_once)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	/*
	 * The pending die waits until the job is back, but not for long: lock
	 * waits are cut short (pq_stopping_lock_timeout), and another SIGTERM
	 * stops the worker at once; the job is then a dead worker's.
	 */
	ProcDiePending = false;
	if (killed_at_once)
		ereport(LOG,
				(errmsg("procq worker %d killed the process group of shell job %lld at once (SIGKILL): the worker is stopping",
						pq_my_slot + 1, (long long) job->id)));
	PG_TRY();
	{
		pq_begin_work("putting back an interrupted shell job");
		pq_stopping_lock_timeout();
		if (pq_put_back_uncounted(job->id, job->attempts, job->lock, job->queueing_lock))
			ereport(LOG,
					(errmsg("procq worker %d was stopped while running shell job %lld: the job is back to todo",
							pq_my_slot + 1, (long long) job->id)));
		pq_end_work();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		clean_up_after_error();
		MemoryContextSwitchTo(oldcxt);
		ereport(LOG,
				(errmsg("procq worker %d could not put back shell job %lld before stopping: %s",
						pq_my_slot + 1, (long long) job->id, edata->message),
				 errdetail("It is put back as the job of a dead worker.")));
	}
	PG_END_TRY();
	set_in_flight(NULL);
	ProcDiePending = true;
	InterruptPending = true;
}

/*
 * pq_run_shell_job fetches one shell job and commits it as doing, runs its
 * program outside any transaction, and records the outcome.  Returns
 * whether there was one.
 */
bool
pq_run_shell_job(MemoryContext jobcxt)
{
	PQWorkerJob *jobs;
	PQWorkerJob *job;
	PQShellResult res;
	ShellOutcome outcome;
	volatile bool finished_first;
	bool		killed_at_once;

	pq_shell_finish_in_flight();

	pq_begin_work("fetching a shell job");
	if (pq_claim_jobs("shell", 1, PQ_SHELL_LEASE_SECONDS, &jobs, jobcxt) == 0)
	{
		pq_end_work();
		return false;
	}
	job = &jobs[0];
	/* In the slot before it is doing: cancel_job must find it here. */
	pq_slot_set_state(PQ_WORKER_SHELL, job->id, job->task);
	pq_end_work();
	set_in_flight(job);
	/* Only an abort of this job may cancel what follows. */
	if (!pq_slot_abort_requested(job->id))
		QueryCancelPending = false;

	/* Everything until the next transaction lives in jobcxt. */
	MemoryContextSwitchTo(jobcxt);
	run_program(job, &res, &killed_at_once);

	/*
	 * Stopped cleanly while its program ran: the worker killed the program,
	 * the job goes back; then the worker exits.  A program that had ended
	 * by itself first has its outcome recorded before the stop is handled.
	 */
	finished_first = ProcDiePending && pq_clean_stop && !res.aborted;
	if (ProcDiePending && pq_clean_stop && res.aborted)
		put_back_interrupted(job, killed_at_once);
	/* Otherwise, when shutting down, the next worker recovers the job. */
	if (!finished_first)
		CHECK_FOR_INTERRUPTS();
	outcome = shell_outcome(job, &res);

	/* the pending die waits for the outcome, as put_back_interrupted's */
	if (finished_first)
		ProcDiePending = false;
	PG_TRY();
	{
		record_outcome(job, &res, outcome, jobcxt, finished_first);
		pq_slot_job_done();
	}
	PG_FINALLY();
	{
		if (finished_first)
		{
			ProcDiePending = true;
			InterruptPending = true;
		}
	}
	PG_END_TRY();
	return true;
}
