/*-------------------------------------------------------------------------
 *
 * run_sql.h
 *	  Running the jobs of SQL handlers in a background worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_RUN_SQL_H
#define PROCQ_RUN_SQL_H

#include "postgres.h"

extern bool pq_run_sql_batch(MemoryContext jobcxt);

#endif							/* PROCQ_RUN_SQL_H */
