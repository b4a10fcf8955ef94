/*-------------------------------------------------------------------------
 *
 * orphans.c
 *	  Putting back the shell jobs whose procq worker died while running
 *	  them.  A shell job is committed as doing, with a lease longer than
 *	  any timeout, before its program runs; if its worker dies, the job
 *	  names a worker that no longer holds its slot.  The workers look for
 *	  such jobs when they start and every 30 seconds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "guc.h"
#include "lifecycle.h"
#include "locks.h"
#include "orphans.h"
#include "shmem.h"
#include "spi_exec.h"
#include "worker_xact.h"

static PQStatement stmt_orphans = PQ_STATEMENT(
	"SELECT id, lock, queueing_lock, worker FROM procq.jobs"
	" WHERE status = 'doing' AND worker LIKE 'procq worker % pid %'",
	0, InvalidOid);

/*
 * worker_is_alive says whether the worker named name ("procq worker <slot>
 * pid <pid>") still holds its slot, given every slot's pid.
 */
static bool
worker_is_alive(const char *name, const pid_t *live)
{
	const char *prefix = "procq worker ";
	char	   *end;
	long		slot;
	long		pid;

	/* strtol, not sscanf: the name comes from SQL and may overflow an int */
	if (strncmp(name, prefix, strlen(prefix)) != 0)
		return false;
	errno = 0;
	slot = strtol(name + strlen(prefix), &end, 10);
	if (errno != 0 || strncmp(end, " pid ", 5) != 0)
		return false;
	name = end + 5;
	pid = strtol(name, &end, 10);
	if (errno != 0 || end == name)
		return false;
	return slot >= 1 && slot <= PQ_MAX_WORKERS && live[slot - 1] == pid;
}

/*
 * pq_recover_orphans puts back the jobs of dead workers: to todo with the
 * attempt counted, or to failed when none is left.  Jobs whose lock queues
 * are busy are left for next time.
 *
 * The live workers are read after the jobs: a worker that started since
 * cannot have fetched a job we see.  And a job is only put back if it
 * still names the dead worker, so a job that a live worker fetched again
 * meanwhile is left alone.
 */
void
pq_recover_orphans(void)
{
	pid_t		live[PQ_MAX_WORKERS];
	int			n;
	int			recovered = 0;
	int64	   *ids;
	char	  **locks;
	char	  **qlocks;
	char	  **names;

	pq_begin_work("recovering jobs of dead workers");
	n = pq_exec(&stmt_orphans, NULL, NULL, 0);
	pq_live_worker_pids(live);

	ids = palloc(sizeof(int64) * Max(n, 1));
	locks = palloc(sizeof(char *) * Max(n, 1));
	qlocks = palloc(sizeof(char *) * Max(n, 1));
	names = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = 0;
		names[i] = pq_get_text(i, 4);
		if (worker_is_alive(names[i], live))
			continue;
		ids[i] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
		locks[i] = pq_get_text(i, 2);
		qlocks[i] = pq_get_text(i, 3);
	}
	for (int i = 0; i < n; i++)
	{
		if (ids[i] == 0 ||
			(locks[i] && !pq_try_lock_key(locks[i], true)) ||
			(qlocks[i] && !pq_lock_queueing_key(qlocks[i], true)))
			continue;
		recovered += pq_recover_job(ids[i], "its procq worker died while running it",
									names[i]);
	}
	if (recovered > 0)
		ereport(LOG,
				(errmsg("procq worker %d put back %d job(s) of workers that died",
						pq_my_slot + 1, recovered)));
	pq_end_work();
}
