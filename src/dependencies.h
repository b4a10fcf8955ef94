/*-------------------------------------------------------------------------
 *
 * dependencies.h
 *	  procq.add_dependencies: new parents for a job that has not started.
 *
 * Its only export is the SQL function procq_add_dependencies (declared by
 * PG_FUNCTION_INFO_V1 in dependencies.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_DEPENDENCIES_H
#define PROCQ_DEPENDENCIES_H

#include "postgres.h"

#include "fmgr.h"

extern Datum procq_add_dependencies(PG_FUNCTION_ARGS);

#endif							/* PROCQ_DEPENDENCIES_H */
