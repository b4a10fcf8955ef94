/*-------------------------------------------------------------------------
 *
 * procq.c
 *	  procq's module entry point: _PG_init sets up each module.
 *
 * See procq.h for a map of the source files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "guc.h"
#include "launcher.h"
#include "notify.h"
#include "shmem.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init defines procq's settings and the commit-time wake-up of the
 * workers; when procq is being preloaded, it also asks for shared memory
 * and registers the launcher of the background workers.
 */
void
_PG_init(void)
{
	pq_guc_init();
	pq_notify_init();

	/* The rest only makes sense, and is only allowed, while preloading. */
	if (!process_shared_preload_libraries_in_progress)
		return;
	pq_shmem_init();
	pq_launcher_register();
}
