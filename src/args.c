/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Checking SQL function arguments, and lists and arrays of job ids.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"

#include "args.h"
#include "procq.h"

/*
 * pq_require_arg raises an error when argument argno of the call is NULL.
 */
void
pq_require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/*
 * pq_check_name_length refuses a task, queue, lock or queueing_lock (name
 * says which) longer than PQ_NAME_MAX_CHARS characters; NULL passes.
 * Counting characters is only needed when there are more bytes than that.
 */
void
pq_check_name_length(text *value, const char *name)
{
	int			nbytes;
	int			nchars;

	if (value == NULL)
		return;
	nbytes = VARSIZE_ANY_EXHDR(value);
	if (nbytes <= PQ_NAME_MAX_CHARS)
		return;
	nchars = pg_mbstrlen_with_len(VARDATA_ANY(value), nbytes);
	if (nchars > PQ_NAME_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s must be at most %d characters long", name, PQ_NAME_MAX_CHARS),
				 errdetail("It has %d characters.", nchars)));
}

/*
 * pq_idlist_add appends an id to a list (a zeroed PQIdList is empty).
 */
void
pq_idlist_add(PQIdList *list, int64 id)
{
	if (list->n == list->cap)
	{
		list->cap = Max(16, list->cap * 2);
		list->ids = list->ids
			? repalloc(list->ids, sizeof(int64) * list->cap)
			: palloc(sizeof(int64) * list->cap);
	}
	list->ids[list->n++] = id;
}

/*
 * pq_int8_array builds a bigint[] Datum from n ids.
 */
Datum
pq_int8_array(const int64 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	Datum		result;

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	result = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64),
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	pfree(elems);
	return result;
}

/*
 * cmp_int64 orders int64 values for qsort.
 */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * pq_sort_unique_ids sorts ids in place and drops duplicates, so that a
 * parent named twice counts once; *n becomes the new length.
 */
int64 *
pq_sort_unique_ids(int64 *ids, int *n)
{
	int			out = 0;

	if (*n == 0)
		return ids;
	qsort(ids, *n, sizeof(int64), cmp_int64);
	for (int i = 0; i < *n; i++)
		if (out == 0 || ids[out - 1] != ids[i])
			ids[out++] = ids[i];
	*n = out;
	return ids;
}
