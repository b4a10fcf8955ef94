/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  Telling others that a job became ready: LISTENers on channel procq,
 *	  and the background workers, when the transaction commits.
 *
 * The notifications are collected while the transaction runs and handed
 * to PostgreSQL's NOTIFY at its pre-commit, not when the job becomes
 * ready: PostgreSQL refuses PREPARE TRANSACTION after a NOTIFY, and a
 * transaction that makes a job ready must be preparable.  A prepared
 * transaction therefore notifies nobody; its jobs become ready at COMMIT
 * PREPARED and are found by the next poll (README, "Wake-up").
 *
 * Global state, reset at every transaction end: the queues to notify
 * (pending_list, in the order they were first named, and pending_hash,
 * their names, once there are many), each with the subtransaction that named it,
 * so that a subtransaction that rolls back takes its notifications with it;
 * pending_newest, the newest such subtransaction; and wakeup_pending,
 * whether to wake the workers at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "notify.h"
#include "shmem.h"

/* A queue to notify at commit, and the subtransaction that named it. */
typedef struct PendingQueue
{
	char	   *queue;
	SubTransactionId subid;
} PendingQueue;

/*
 * The queues of this transaction, in TopTransactionContext; the names of
 * the list's entries are also in pending_hash (its entries are pointers to
 * them) once there are more than PENDING_LIST_MAX.
 */
#define PENDING_LIST_MAX 16
static HTAB *pending_hash = NULL;
static List *pending_list = NIL;

/* The newest subtransaction that named a queue still pending. */
static SubTransactionId pending_newest = InvalidSubTransactionId;

/* Set when a committing transaction notified: wake the workers. */
static bool wakeup_pending = false;

/*
 * queue_hash and queue_match hash and compare the keys of pending_hash,
 * pointers to queue names (those of the list's entries), by the names.
 */
static uint32
queue_hash(const void *key, Size keysize)
{
	const char *queue = *(const char *const *) key;

	return hash_bytes((const unsigned char *) queue, (int) strlen(queue));
}

static int
queue_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * forget_pending drops what this transaction collected (its memory goes
 * with TopTransactionContext).
 */
static void
forget_pending(void)
{
	pending_hash = NULL;
	pending_list = NIL;
	pending_newest = InvalidSubTransactionId;
}

/*
 * xact_callback sends the collected notifications at pre-commit (NOTIFY
 * then delivers them only if the commit succeeds), wakes every worker of
 * this database once the commit is visible, so that an idle worker starts
 * a job at once instead of at its next poll, and drops them on abort and
 * on PREPARE TRANSACTION.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			foreach(lc, pending_list)
				Async_Notify(PQ_NOTIFY_CHANNEL, ((PendingQueue *) lfirst(lc))->queue);
			wakeup_pending = pending_list != NIL;
			forget_pending();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wakeup_pending)
				pq_shmem_wake_workers(MyDatabaseId);
			wakeup_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PRE_PREPARE:
		case XACT_EVENT_PREPARE:
			forget_pending();
			wakeup_pending = false;
			break;
		default:
			break;
	}
}

/*
 * subxact_callback hands the queues a subtransaction named to its parent
 * when it commits, and drops them when it rolls back.  Subtransactions
 * end innermost first, so every pending entry belongs to this one or to
 * an ancestor; with none newer than this one there is nothing to do.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (pending_list == NIL || pending_newest < mySubid)
		return;
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			foreach(lc, pending_list)
			{
				PendingQueue *entry = (PendingQueue *) lfirst(lc);

				if (entry->subid == mySubid)
					entry->subid = parentSubid;
			}
			pending_newest = parentSubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			foreach(lc, pending_list)
			{
				PendingQueue *entry = (PendingQueue *) lfirst(lc);

				if (entry->subid == mySubid)
				{
					if (pending_hash != NULL)
						(void) hash_search(pending_hash, &entry->queue, HASH_REMOVE, NULL);
					pending_list = foreach_delete_current(pending_list, lc);
				}
			}
			pending_newest = parentSubid;
			break;
		default:
			break;
	}
}

/*
 * pq_notify_init registers the callbacks; called from _PG_init.
 */
void
pq_notify_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}

/*
 * pq_notify_ready tells LISTENers on channel "procq" that a job of queue
 * became ready, and the background workers too, when the transaction
 * commits: once per queue and transaction, and not if the
 * (sub)transaction that made it ready rolls back.
 */
void
pq_notify_ready(const char *queue)
{
	PendingQueue *entry;
	MemoryContext old;
	ListCell   *lc;

	/* most transactions name one queue or a few: a list is enough */
	if (pending_hash != NULL)
	{
		if (hash_search(pending_hash, &queue, HASH_FIND, NULL) != NULL)
			return;
	}
	else
	{
		foreach(lc, pending_list)
			if (strcmp(((PendingQueue *) lfirst(lc))->queue, queue) == 0)
				return;
	}

	old = MemoryContextSwitchTo(TopTransactionContext);
	entry = palloc(sizeof(PendingQueue));
	entry->queue = pstrdup(queue);
	entry->subid = GetCurrentSubTransactionId();
	pending_list = lappend(pending_list, entry);
	if (entry->subid > pending_newest)
		pending_newest = entry->subid;

	/* many: index them by name */
	if (pending_hash == NULL && list_length(pending_list) > PENDING_LIST_MAX)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(char *);
		ctl.entrysize = sizeof(char *);
		ctl.hash = queue_hash;
		ctl.match = queue_match;
		ctl.hcxt = TopTransactionContext;
		pending_hash = hash_create("procq notifications", 64, &ctl,
								   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
		foreach(lc, pending_list)
			(void) hash_search(pending_hash, &((PendingQueue *) lfirst(lc))->queue,
							   HASH_ENTER, NULL);
	}
	else if (pending_hash != NULL)
		(void) hash_search(pending_hash, &entry->queue, HASH_ENTER, NULL);
	MemoryContextSwitchTo(old);
}
