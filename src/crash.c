/*-------------------------------------------------------------------------
 *
 * crash.c
 *	  Crash accounting of SQL jobs.
 *
 * A SQL job whose handler kills its worker (a crash, or a handler that
 * terminates its own backend) takes the worker's uncommitted batch with
 * it, so the job, never counted as attempted, would run again and again.
 * Before running a SQL job, a worker writes down, outside any transaction,
 * which job it runs and for the how-many-th time in a row, in a file of
 * its slot ($PGDATA/pg_procq/worker_<slot>).  The next worker in the slot
 * reads it, and once a job killed PQ_POISON_LIMIT workers it is failed
 * instead of run.
 *
 * Global state, in a worker process: the file's path, and the job the
 * slot's previous worker died running (suspect_job) with its count.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "crash.h"

static char *running_file = NULL;
static int64 suspect_job = 0;
static int	suspect_runs = 0;

/*
 * pq_crash_open finds the running-job file of slot (creating its
 * directory) and reads what the slot's previous worker left in it.
 */
void
pq_crash_open(int slot)
{
	char	   *dir = psprintf("%s/pg_procq", DataDir);
	FILE	   *f;
	long long	job;
	int			runs;

	if (MakePGDirectory(dir) < 0 && errno != EEXIST)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", dir)));
	running_file = MemoryContextStrdup(TopMemoryContext,
									   psprintf("%s/worker_%d", dir, slot + 1));
	f = AllocateFile(running_file, "r");
	if (f != NULL)
	{
		if (fscanf(f, "%lld %d", &job, &runs) == 2)
		{
			suspect_job = job;
			suspect_runs = runs;
		}
		FreeFile(f);
	}
}

/*
 * pq_crash_is_poison says whether job_id has killed PQ_POISON_LIMIT
 * workers of this slot in a row, and how many (*runs).
 */
bool
pq_crash_is_poison(int64 job_id, int *runs)
{
	*runs = suspect_runs;
	return job_id == suspect_job && suspect_runs >= PQ_POISON_LIMIT;
}

/*
 * pq_crash_note_running writes down that the worker is about to run SQL
 * job job_id, and for the how-many-th time in a row; returns that count.
 */
int
pq_crash_note_running(int64 job_id)
{
	int			runs = (job_id == suspect_job) ? suspect_runs + 1 : 1;
	FILE	   *f = AllocateFile(running_file, "w");

	if (f == NULL || fprintf(f, "%lld %d\n", (long long) job_id, runs) < 0 ||
		FreeFile(f) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", running_file)));
	/* Until the batch commits, a retry in this process counts on. */
	suspect_job = job_id;
	suspect_runs = runs;
	return runs;
}

/*
 * pq_crash_clear forgets the running job once its batch has committed.
 */
void
pq_crash_clear(void)
{
	if (unlink(running_file) < 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", running_file)));
	suspect_job = 0;
	suspect_runs = 0;
}
