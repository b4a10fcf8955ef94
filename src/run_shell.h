/*-------------------------------------------------------------------------
 *
 * run_shell.h
 *	  Running the jobs of shell handlers in a background worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_RUN_SHELL_H
#define PROCQ_RUN_SHELL_H

#include "postgres.h"

extern bool pq_run_shell_job(MemoryContext jobcxt);
extern void pq_shell_finish_in_flight(void);

#endif							/* PROCQ_RUN_SHELL_H */
