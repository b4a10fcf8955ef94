/*-------------------------------------------------------------------------
 *
 * spi_exec.h
 *	  Running procq's internal statements as the owner of its tables.
 *
 * Each module declares the statements it runs as static PQStatement
 * variables next to the code that runs them:
 *
 *	static PQStatement stmt_cancel = PQ_STATEMENT(
 *		"UPDATE procq.jobs SET ... WHERE id = $1", 1, INT8OID);
 *
 * pq_exec prepares a statement on first use and keeps its plan for the life
 * of the backend in the variable itself (the only state these variables
 * hold).  Plans survive DROP/CREATE EXTENSION: the plan cache replans them
 * when the tables they name change.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_SPI_EXEC_H
#define PROCQ_SPI_EXEC_H

#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"

/* Most parameters an internal statement has. */
#define PQ_STATEMENT_MAX_ARGS 20

typedef struct PQStatement
{
	const char *sql;
	int			nargs;
	Oid			argtypes[PQ_STATEMENT_MAX_ARGS];
	SPIPlanPtr	plan;			/* NULL until first use, then kept */
	int			cursor_options; /* for SPI_prepare_cursor; 0 by default */
} PQStatement;

/* Initializer of a PQStatement: SQL text, number of parameters, their types. */
#define PQ_STATEMENT(sql, nargs, ...) {(sql), (nargs), {__VA_ARGS__}, NULL, 0}

/*
 * The same for a statement that always runs its generic plan: one whose
 * custom plans would be chosen for ever (a LIMIT $n makes the generic
 * plan look costlier) and cost more to plan than to run.
 */
#define PQ_STATEMENT_GENERIC(sql, nargs, ...) \
	{(sql), (nargs), {__VA_ARGS__}, NULL, CURSOR_OPT_GENERIC_PLAN}

extern void pq_connect(void);
extern void pq_connect_worker(void);
extern bool pq_installed(void);
extern void pq_finish(void);
extern int	pq_exec(PQStatement *stmt, Datum *values, const char *nulls, long count);
extern Datum pq_get_attr(int row, int col, bool *isnull);
extern char *pq_get_text(int row, int col);

#endif							/* PROCQ_SPI_EXEC_H */
