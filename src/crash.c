/*-------------------------------------------------------------------------
 *
 * crash.c
 *	  Crash accounting of SQL jobs, once per batch.
 *
 * A SQL job whose handler kills its worker (a crash, or a handler that
 * terminates its own backend) takes the worker's uncommitted batch with
 * it, so the job, never counted as attempted, would run again and again.
 * Before running a batch, a worker writes down, outside any transaction,
 * every job of the batch and how many workers of its slot died in a row
 * while it was in their batch, in one write of a file of its slot
 * ($PGDATA/pg_procq/worker_<slot>, one "job deaths" line per job).  The
 * file is emptied when the batch commits.
 *
 * The next worker in the slot reads the file: its jobs are suspects.  As
 * long as there are suspects, the worker runs batches of one job (see
 * pq_crash_alone), so that a death names its culprit alone and innocent
 * neighbours are cleared by their own commit; a job that was in the batch
 * of PQ_POISON_LIMIT dead workers in a row is failed instead of run.
 *
 * A worker stopped cleanly (pq_clean_stop: by the postmaster or the
 * launcher), or killed by the postmaster's SIGQUIT (another process
 * crashed, or an immediate shutdown), writes back what the file said
 * before its batch: an interrupted batch does not count.
 *
 * Global state, in a worker process: the file's path and descriptor, the suspects (job,
 * deaths) read at start and not yet cleared, how many batches of one are
 * left to clear them, and the jobs of the open batch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "crash.h"

/* A job and how many workers died in a row while it was in their batch. */
typedef struct CrashEntry
{
	int64		job_id;
	int			deaths;
} CrashEntry;

volatile sig_atomic_t pq_clean_stop = false;

static char *running_file = NULL;
static int	running_fd = -1;
static CrashEntry *suspects = NULL;
static int	nsuspects = 0;
static int	alone_left = 0;		/* batches of one left to clear suspects */
static int	suspects_cap = 0;
static int64 *batch = NULL;		/* the open batch, written to the file */
static int	nbatch = 0;
static int	batch_cap = 0;
static CrashEntry *noted = NULL;	/* what the file says during the batch */
static int	nnoted = 0;
static int	noted_cap = 0;
static bool file_written = false;

/*
 * What the file said before the open batch, rendered, for worker_quickdie
 * to write back (a SIGQUIT is not a death of the batch); armed while the
 * batch is open.
 */
static char *prebatch = NULL;
static int	prebatch_len = 0;
static int	prebatch_cap = 0;
static volatile sig_atomic_t prebatch_armed = false;

/*
 * write_entries replaces the content of the slot's file with the given
 * entries (none: empty), through the descriptor kept open for the life of
 * the worker: one write and one truncate per batch, no open or unlink.
 */
/*
 * render_entries renders entries[0..n) as the file holds them, in buf.
 */
static void
render_entries(StringInfo buf, const CrashEntry *entries, int n)
{
	for (int i = 0; i < n; i++)
		appendStringInfo(buf, "%lld %d\n", (long long) entries[i].job_id, entries[i].deaths);
}

static void
write_entries(const CrashEntry *entries, int n)
{
	StringInfoData buf;

	if (n == 0 && !file_written)
		return;
	initStringInfo(&buf);
	render_entries(&buf, entries, n);
	if (running_fd < 0 ||
		(buf.len > 0 && pg_pwrite(running_fd, buf.data, buf.len, 0) != buf.len) ||
		ftruncate(running_fd, buf.len) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", running_file)));
	file_written = (n > 0);
	pfree(buf.data);
}

/*
 * find_suspect returns the index of job_id among the suspects, or -1.
 */
static int
find_suspect(int64 job_id)
{
	for (int i = 0; i < nsuspects; i++)
		if (suspects[i].job_id == job_id)
			return i;
	return -1;
}

/*
 * pq_crash_open finds the running-jobs file of slot (creating its
 * directory) and reads what the slot's previous worker left in it: the
 * suspects.
 */
void
pq_crash_open(int slot)
{
	char	   *dir = psprintf("%s/pg_procq", DataDir);
	FILE	   *f;
	long long	job;
	int			deaths;
	int			cap = 16;

	if (MakePGDirectory(dir) < 0 && errno != EEXIST)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", dir)));
	running_file = MemoryContextStrdup(TopMemoryContext,
									   psprintf("%s/worker_%d", dir, slot + 1));
	suspects = MemoryContextAlloc(TopMemoryContext, sizeof(CrashEntry) * cap);
	suspects_cap = cap;
	running_fd = BasicOpenFile(running_file, O_RDWR | O_CREAT | PG_BINARY);
	if (running_fd < 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", running_file)));
	f = AllocateFile(running_file, "r");
	if (f == NULL)
		return;
	/* NOLINTNEXTLINE(cert-err34-c): procq's own file, written by render_entries */
	while (fscanf(f, "%lld %d", &job, &deaths) == 2)
	{
		if (nsuspects == cap)
		{
			cap *= 2;
			suspects = repalloc(suspects, sizeof(CrashEntry) * cap);
			suspects_cap = cap;
		}
		suspects[nsuspects].job_id = job;
		suspects[nsuspects].deaths = deaths;
		nsuspects++;
	}
	FreeFile(f);
	file_written = (nsuspects > 0);
	/* enough batches of one for every suspect, and as many for the others */
	alone_left = 2 * nsuspects;
}

/*
 * pq_crash_alone says whether the next batch must hold one job only: the
 * slot's previous worker died, and not every suspect is cleared yet.
 */
bool
pq_crash_alone(void)
{
	return nsuspects > 0 && alone_left > 0;
}

/*
 * pq_crash_deaths returns how many workers of this slot died in a row
 * with job_id in their batch; at PQ_POISON_LIMIT, the job must not run.
 */
int
pq_crash_deaths(int64 job_id)
{
	int			i = find_suspect(job_id);

	return i < 0 ? 0 : suspects[i].deaths;
}

/*
 * pq_crash_note_batch writes down, in one write, that the worker is about
 * to run the jobs ids[0..n) in one batch: each counts one more death if
 * the worker dies before the batch commits.  The suspects not in the
 * batch are written down again as they are.
 */
void
pq_crash_note_batch(const int64 *ids, int n)
{
	CrashEntry *entries;
	int			m = 0;

	if (n > batch_cap)
	{
		batch_cap = Max(n, 16);
		batch = batch ? repalloc(batch, sizeof(int64) * batch_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(int64) * batch_cap);
	}
	if (n > 0)					/* batch is still NULL for an empty first batch */
		memcpy(batch, ids, sizeof(int64) * n);
	nbatch = n;

	/* what worker_quickdie writes back if the batch dies of a SIGQUIT */
	prebatch_armed = false;
	{
		StringInfoData buf;

		initStringInfo(&buf);
		render_entries(&buf, suspects, nsuspects);
		if (buf.len + 1 > prebatch_cap)
		{
			prebatch_cap = Max(buf.len + 1, 256);
			prebatch = prebatch ? repalloc(prebatch, prebatch_cap)
				: MemoryContextAlloc(TopMemoryContext, prebatch_cap);
		}
		memcpy(prebatch, buf.data, buf.len);
		prebatch_len = buf.len;
		pfree(buf.data);
	}
	prebatch_armed = (n > 0);

	if (n + nsuspects > noted_cap)
	{
		noted_cap = Max(n + nsuspects, 16);
		noted = noted ? repalloc(noted, sizeof(CrashEntry) * noted_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(CrashEntry) * noted_cap);
	}
	entries = noted;
	for (int i = 0; i < nsuspects; i++)
		entries[m++] = suspects[i];
	for (int i = 0; i < n; i++)
	{
		int			s = find_suspect(ids[i]);

		if (s >= 0)
			entries[s].deaths++;
		else
		{
			entries[m].job_id = ids[i];
			entries[m].deaths = 1;
			m++;
		}
	}
	nnoted = m;
	write_entries(entries, m);
}

/*
 * pq_crash_batch_done forgets the open batch once it has committed (or
 * rolled back without the worker dying): its jobs are cleared of suspicion.
 */
void
pq_crash_batch_done(void)
{
	int			m = 0;

	prebatch_armed = false;
	if (nbatch == 0)
		return;
	for (int i = 0; i < nsuspects; i++)
	{
		bool		in_batch = false;

		for (int b = 0; b < nbatch && !in_batch; b++)
			in_batch = (batch[b] == suspects[i].job_id);
		if (!in_batch)
			suspects[m++] = suspects[i];
	}
	nsuspects = m;
	nbatch = 0;
	if (alone_left > 0)
		alone_left--;
	if (alone_left == 0)
		nsuspects = 0;
	write_entries(suspects, nsuspects);
}

/*
 * pq_crash_interrupted is called when the worker exits after a clean stop
 * (pq_clean_stop): the open batch did not kill it, so the file goes back
 * to what it said before the batch.
 */
void
pq_crash_interrupted(void)
{
	prebatch_armed = false;
	if (running_file == NULL || nbatch == 0)
		return;
	nbatch = 0;
	write_entries(suspects, nsuspects);
}

/*
 * pq_crash_batch_failed is called when the open batch's transaction failed
 * as a whole (an error while its outcomes were recorded, or at its
 * commit): its claim is rolled back with it, so its jobs would be claimed
 * and run again together, and fail again, forever.  Instead, it counts as
 * a death of the worker: the file keeps what it says, its jobs become
 * suspects, and they run alone next (where a job whose outcome cannot be
 * recorded is failed, see run_sql.c), a job that keeps failing its batch
 * being failed at PQ_POISON_LIMIT.
 */
void
pq_crash_batch_failed(void)
{
	prebatch_armed = false;
	if (nbatch == 0)
		return;
	if (nnoted > suspects_cap)
	{
		suspects_cap = nnoted;
		suspects = suspects ? repalloc(suspects, sizeof(CrashEntry) * suspects_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(CrashEntry) * suspects_cap);
	}
	if (nnoted > 0)
		memcpy(suspects, noted, sizeof(CrashEntry) * nnoted);
	nsuspects = nnoted;
	nbatch = 0;
	alone_left = 2 * nsuspects;
}

/*
 * pq_crash_quickdie is called by the worker's SIGQUIT handler: the
 * postmaster kills every process after another one crashed (or for an
 * immediate shutdown), which says nothing about the open batch.  The file
 * goes back to what it said before the batch, with async-signal-safe
 * calls only, on the descriptor kept open.
 */
void
pq_crash_quickdie(void)
{
	if (!prebatch_armed || running_fd < 0)
		return;
	if (prebatch_len > 0 && pwrite(running_fd, prebatch, prebatch_len, 0) != prebatch_len)
		return;
	if (ftruncate(running_fd, prebatch_len) != 0)
		return;
}
