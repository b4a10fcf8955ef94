/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  Telling others that a job became ready: LISTENers on channel procq,
 *	  and the background workers, when the transaction commits.
 *
 * Global state: wakeup_pending, whether the current transaction made a
 * job ready; reset at every transaction end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"

#include "notify.h"
#include "shmem.h"

/* Set when this transaction made a job ready: wake the workers at commit. */
static bool wakeup_pending = false;

/*
 * xact_callback wakes every worker of this database when a transaction
 * that made a job ready has committed (the commit is visible by then), so
 * that an idle worker starts it at once instead of at its next poll.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wakeup_pending)
				pq_shmem_wake_workers(MyDatabaseId);
			wakeup_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wakeup_pending = false;
			break;
		default:
			break;
	}
}

/*
 * pq_notify_init registers the commit callback; called from _PG_init.
 */
void
pq_notify_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
}

/*
 * pq_notify_ready tells LISTENers on channel "procq" that a job of queue
 * became ready, and the background workers too.  PostgreSQL sends a
 * notification once per distinct channel and payload per transaction, and
 * only if it commits; the workers are woken at commit as well.
 */
void
pq_notify_ready(const char *queue)
{
	Async_Notify(PQ_NOTIFY_CHANNEL, queue);
	wakeup_pending = true;
}
