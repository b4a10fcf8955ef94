/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  Lock queues and queueing locks.
 *
 * Invariant: in each lock queue (live jobs sharing a lock value) at most
 * one job is not lock_blocked: the doing one if there is one, else the
 * todo job with the lowest id.  pq_refresh_lock restores it after a job
 * joined or left a queue.
 *
 * Changes to a lock queue, and the transactions that may put a job with a
 * given queueing_lock into todo, are serialized by transaction-level
 * heavyweight locks of procq's own on (class, hash of the value): locks
 * with tag type LOCKTAG_USERLOCK, which no SQL function takes, shows or
 * waits for (the advisory lock functions make LOCKTAG_ADVISORY tags only),
 * so that no role can stall a lock queue by holding procq's key, and no
 * session wait on procq's locks.  They are user-method locks, like
 * advisory ones: deadlocks with other locks are detected, lock_timeout
 * applies to waiting for them, and pg_locks shows them as locktype
 * 'userlock' (database, classid = class, objid = hash).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"

#include "locks.h"
#include "notify.h"
#include "procq.h"
#include "spi_exec.h"

/*
 * First keys of procq's locks: PQ_LOCK_CLASS for a lock queue
 * (pq_lock_key), the next one for a queueing lock (pq_lock_queueing_key),
 * the one after for the dependency graph (pq_lock_dependency_graph); the
 * second key is a hash of the value.  "proq" in ASCII.
 */
#define PQ_LOCK_CLASS 1886547825

static PQStatement stmt_queue_busy = PQ_STATEMENT(
	"SELECT EXISTS (SELECT 1 FROM procq.jobs"
	" WHERE lock = $1 AND status IN ('todo', 'doing'))",
	1, TEXTOID);

static PQStatement stmt_queueing_lock_holder = PQ_STATEMENT(
	"SELECT id FROM procq.jobs WHERE queueing_lock = $1 AND status = 'todo'",
	1, TEXTOID);

static PQStatement stmt_locks_of = PQ_STATEMENT(
	"SELECT DISTINCT lock FROM procq.jobs"
	" WHERE id = ANY($1) AND lock IS NOT NULL ORDER BY lock",
	1, INT8ARRAYOID);

static PQStatement stmt_heads = PQ_STATEMENT(
	"SELECT id, status::text FROM procq.jobs"
	" WHERE lock = $1 AND status IN ('todo', 'doing') AND NOT lock_blocked",
	1, TEXTOID);

static PQStatement stmt_first_todo = PQ_STATEMENT(
	"SELECT id FROM procq.jobs"
	" WHERE lock = $1 AND status IN ('todo', 'doing') AND status = 'todo'"
	" ORDER BY id LIMIT 1",
	1, TEXTOID);

static PQStatement stmt_set_blocked = PQ_STATEMENT(
	"UPDATE procq.jobs SET lock_blocked = $2"
	" WHERE id = $1 AND status = 'todo' RETURNING queue, " PQ_READY_COND,
	2, INT8OID, BOOLOID);

/*
 * private_lock takes a transaction-level lock of procq's own on (class,
 * hash of value) in this database (see the file header); with nowait it
 * returns false rather than wait for it.
 */
static bool
private_lock(uint32 class, const char *value, bool nowait)
{
	LOCKTAG		tag;
	uint32		hash;

	hash = DatumGetUInt32(hash_any((const unsigned char *) value, strlen(value)));
	tag.locktag_field1 = MyDatabaseId;
	tag.locktag_field2 = class;
	tag.locktag_field3 = hash;
	tag.locktag_field4 = 0;
	tag.locktag_type = LOCKTAG_USERLOCK;
	tag.locktag_lockmethodid = USER_LOCKMETHOD;
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
	(void) private_lock(PQ_LOCK_CLASS, lock, false);
}

/*
 * pq_try_lock_key is pq_lock_key, but with nowait it gives up at once when
 * another transaction holds the lock, and returns false.
 */
bool
pq_try_lock_key(const char *lock, bool nowait)
{
	return private_lock(PQ_LOCK_CLASS, lock, nowait);
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
	return private_lock(PQ_LOCK_CLASS + 1, queueing_lock, nowait);
}

/*
 * pq_lock_dependency_graph serializes, until the end of the transaction,
 * the transactions that add dependency rows between existing jobs
 * (procq.add_dependencies, src/dependencies.c), so that each one's cycle
 * check sees the edges of the others once they committed: two calls that
 * together would close a cycle (X -> Y and W -> V beside Y -> W and
 * V -> X) lock four different rows, which alone would not stop them.  One
 * fixed key for the database: such calls run one at a time.  defer and
 * the other functions do not take it (a new job has no children, so its
 * edges cannot close a cycle).  Taken before any row lock.
 */
void
pq_lock_dependency_graph(void)
{
	(void) private_lock(PQ_LOCK_CLASS + 2, "add_dependencies", false);
}

/*
 * pq_lock_queue_busy says whether the lock queue of lock has a live job.
 * A new job has the highest id, so it heads its lock queue iff not.
 */
bool
pq_lock_queue_busy(text *lock)
{
	Datum		v[1] = {PointerGetDatum(lock)};
	bool		isnull;

	pq_exec(&stmt_queue_busy, v, NULL, 1);
	return DatumGetBool(pq_get_attr(0, 1, &isnull));
}

/*
 * pq_queueing_lock_holder returns the id of the todo job that holds
 * queueing_lock, or 0 when none does.  The caller holds the queueing
 * lock's procq lock, so that the answer stays true.
 */
int64
pq_queueing_lock_holder(const char *queueing_lock)
{
	Datum		v[1] = {CStringGetTextDatum(queueing_lock)};
	bool		isnull;

	if (pq_exec(&stmt_queueing_lock_holder, v, NULL, 1) == 1)
		return DatumGetInt64(pq_get_attr(0, 1, &isnull));
	return 0;
}

/*
 * pq_lock_queues_of takes the procq locks of the lock queues of the
 * given jobs (a bigint[] Datum), in a fixed order, before the caller
 * changes their rows (see pq_lock_key), and returns the lock values as a
 * List of C strings.
 */
List *
pq_lock_queues_of(Datum ids)
{
	Datum		v[1] = {ids};
	int			n = pq_exec(&stmt_locks_of, v, NULL, 0);
	List	   *locks = NIL;
	ListCell   *lc;

	for (int i = 0; i < n; i++)
		locks = lappend(locks, pq_get_text(i, 1));
	SPI_freetuptable(SPI_tuptable);
	foreach(lc, locks)
		pq_lock_key((char *) lfirst(lc));
	return locks;
}

/*
 * pq_refresh_lock restores the lock queue invariant for one lock value
 * after a job joined or left it: no todo job may start while one is doing,
 * else only the todo job with the lowest id may.
 *
 * Changes to a lock queue are serialized by pq_lock_key, except fetching
 * its head, which takes no procq lock.  Only the head is fetchable, so
 * the one race is a fetch of the current todo head while we decide that
 * another job should head the queue.  We therefore block the old head
 * first: that UPDATE waits for a fetch in progress, and finds nothing to
 * update if the fetch took the job, which is then running and keeps
 * every other job blocked.
 */
void
pq_refresh_lock(const char *lock)
{
	Datum		v[2];
	int			nheads;
	int64	   *todo_heads;
	int			ntodo_heads = 0;
	bool		doing = false;
	int64		desired = 0;
	bool		isnull;

	pq_lock_key(lock);

	v[0] = CStringGetTextDatum(lock);
	nheads = pq_exec(&stmt_heads, v, NULL, 0);
	todo_heads = palloc(sizeof(int64) * Max(nheads, 1));
	for (int i = 0; i < nheads; i++)
	{
		char	   *status = pq_get_text(i, 2);

		if (strcmp(status, "doing") == 0)
			doing = true;
		else
			todo_heads[ntodo_heads++] = DatumGetInt64(pq_get_attr(i, 1, &isnull));
	}

	if (!doing && pq_exec(&stmt_first_todo, v, NULL, 1) == 1)
		desired = DatumGetInt64(pq_get_attr(0, 1, &isnull));

	for (int i = 0; i < ntodo_heads; i++)
	{
		if (todo_heads[i] == desired)
		{
			desired = 0;		/* already the head */
			continue;
		}
		v[0] = Int64GetDatum(todo_heads[i]);
		v[1] = BoolGetDatum(true);
		if (pq_exec(&stmt_set_blocked, v, NULL, 1) == 0)
			desired = 0;		/* it was fetched meanwhile: now doing */
	}

	if (desired != 0)
	{
		v[0] = Int64GetDatum(desired);
		v[1] = BoolGetDatum(false);
		if (pq_exec(&stmt_set_blocked, v, NULL, 1) == 1 &&
			DatumGetBool(pq_get_attr(0, 2, &isnull)))
			pq_notify_ready(pq_get_text(0, 1));
	}
}

/*
 * cmp_cstring_cells orders a List of C strings for list_sort.
 */
static int
cmp_cstring_cells(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/*
 * pq_refresh_locks moves along each lock queue named in locks (a List of
 * C strings, duplicates allowed), each once.
 */
void
pq_refresh_locks(List *locks)
{
	char	   *previous = NULL;
	ListCell   *lc;

	list_sort(locks, cmp_cstring_cells);
	foreach(lc, locks)
	{
		char	   *lock = (char *) lfirst(lc);

		if (previous == NULL || strcmp(previous, lock) != 0)
			pq_refresh_lock(lock);
		previous = lock;
	}
}
