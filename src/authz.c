/*-------------------------------------------------------------------------
 *
 * authz.c
 *	  The authorization rule of procq, in PostgreSQL's own terms.
 *
 * A role may act on a job (fetch it, finish, cancel, retry or heartbeat
 * it, read it or its result through any procq function, make a job depend
 * on it) only when it is a superuser or has the privileges of the job's
 * deferred_by role (has_privs_of_role, which is what pg_has_role(...,
 * 'USAGE') checks); otherwise 42501.  So a worker role works the jobs of
 * the roles it is a member of (GRANT app TO app_worker), and nobody
 * else's.  The API functions run their statements as the owner of the
 * tables (spi_exec.c), so this is the only thing that stands between a
 * role with EXECUTE and other roles' jobs: every function that names a job
 * calls one of the checks below before it changes or returns anything.
 *
 * Fetching does not raise: it only looks at the jobs of the roles the
 * caller acts as (pq_acting_roles), through ready indexes that lead with
 * deferred_by, so ready jobs of other roles cost it nothing.
 *
 * Global state: the acting roles of the current user, computed once and
 * kept until pg_authid or pg_auth_members change (a syscache callback
 * forgets them) or the current user changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "authz.h"
#include "jobs.h"
#include "spi_exec.h"

/*
 * The acting roles of acting_user, sorted, computed when role_changes was
 * acting_changes; the syscache callback counts changes to roles and
 * memberships.
 */
static Oid	acting_user = InvalidOid;
static uint64 acting_changes = 0;
static uint64 role_changes = 1;
static Oid *acting = NULL;		/* in TopMemoryContext */
static int	nacting = 0;
static bool acting_callback_registered = false;

static PQStatement stmt_deferred_by = PQ_STATEMENT(
	"SELECT deferred_by FROM procq.jobs WHERE id = $1",
	1, INT8OID);

/* the parent of $1 with the lowest id that role $2 may not act on */
static PQStatement stmt_forbidden_parent = PQ_STATEMENT(
	"SELECT p.id, p.deferred_by FROM procq.job_dependencies d"
	" JOIN procq.jobs p ON p.id = d.depends_on"
	" WHERE d.job_id = $1"
	" AND pg_catalog.pg_has_role($2, p.deferred_by, 'USAGE') IS NOT TRUE"
	" ORDER BY p.id LIMIT 1",
	2, INT8OID, OIDOID);

/*
 * pq_may_act_as says whether the current user may act on the jobs
 * deferred by role deferred_by.
 */
bool
pq_may_act_as(Oid deferred_by)
{
	return superuser() || has_privs_of_role(GetUserId(), deferred_by);
}

/*
 * role_name names a role for a message, also one that was dropped.
 */
static const char *
role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	if (name == NULL)
		return psprintf("(dropped role %u)", role);
	return quote_identifier(name);
}

/*
 * pq_require_job_access raises 42501 unless the current user may act on
 * job job_id, deferred by deferred_by.
 */
void
pq_require_job_access(int64 job_id, Oid deferred_by)
{
	const char *caller;
	const char *owner;

	if (pq_may_act_as(deferred_by))
		return;
	caller = role_name(GetUserId());
	owner = role_name(deferred_by);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for job %lld", (long long) job_id),
			 errdetail("Job %lld was deferred by role %s, and role %s does not have the privileges of that role.",
					   (long long) job_id, owner, caller),
			 errhint("Only a superuser or a role with the privileges of %s may act on its jobs (GRANT %s TO %s).",
					 owner, owner, caller)));
}

/*
 * pq_require_job_access_by_id looks job job_id up and raises P0002 when
 * it does not exist, 42501 when the current user may not act on it.  The
 * caller has connected SPI.
 */
void
pq_require_job_access_by_id(int64 job_id)
{
	Datum		v[1] = {Int64GetDatum(job_id)};
	bool		isnull;

	if (pq_exec(&stmt_deferred_by, v, NULL, 1) == 0)
		pq_job_not_found(job_id);
	pq_require_job_access(job_id, DatumGetObjectId(pq_get_attr(0, 1, &isnull)));
}

/*
 * pq_require_parents_access raises 42501 when the current user may not act
 * on a parent of job job_id (whose results it is about to read).  The
 * caller has connected SPI.
 */
void
pq_require_parents_access(int64 job_id)
{
	Datum		v[2] = {Int64GetDatum(job_id), ObjectIdGetDatum(GetUserId())};
	bool		isnull;

	if (superuser())
		return;
	if (pq_exec(&stmt_forbidden_parent, v, NULL, 1) == 0)
		return;
	pq_require_job_access(DatumGetInt64(pq_get_attr(0, 1, &isnull)),
						  DatumGetObjectId(pq_get_attr(0, 2, &isnull)));
}

/*
 * forget_acting_roles is the syscache callback that drops the kept acting
 * roles when a role or a membership changes.
 */
static void
forget_acting_roles(Datum arg, int cacheid, uint32 hashvalue)
{
	role_changes++;
}

/*
 * cmp_oid orders role OIDs.
 */
static int
cmp_oid(const void *a, const void *b)
{
	Oid			x = *(const Oid *) a;
	Oid			y = *(const Oid *) b;

	return (x > y) - (x < y);
}

/*
 * pq_acting_roles returns in *roles (sorted, valid until the next call)
 * the roles whose jobs the current user may act on: every role for a
 * superuser, else those it has the privileges of, itself included; returns
 * how many.  Computed from pg_authid once per current user, and again only
 * after a role or membership changed.
 */
int
pq_acting_roles(Oid **roles)
{
	Oid			user = GetUserId();

	if (!acting_callback_registered)
	{
		CacheRegisterSyscacheCallback(AUTHOID, forget_acting_roles, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, forget_acting_roles, (Datum) 0);
		acting_callback_registered = true;
	}
	if (acting_changes != role_changes || acting_user != user)
	{
		/* a change while we read counts again, and is seen next time */
		uint64		changes = role_changes;
		Relation	rel;
		SysScanDesc scan;
		HeapTuple	tuple;
		int			cap = 16;
		int			n = 0;
		Oid		   *found = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * cap);

		rel = table_open(AuthIdRelationId, AccessShareLock);
		scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
		while (HeapTupleIsValid(tuple = systable_getnext(scan)))
		{
			Oid			role = ((Form_pg_authid) GETSTRUCT(tuple))->oid;

			if (!has_privs_of_role(user, role))
				continue;
			if (n == cap)
			{
				cap *= 2;
				found = repalloc(found, sizeof(Oid) * cap);
			}
			found[n++] = role;
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		qsort(found, n, sizeof(Oid), cmp_oid);

		if (acting != NULL)
			pfree(acting);
		acting = found;
		nacting = n;
		acting_user = user;
		acting_changes = changes;
	}
	*roles = acting;
	return nacting;
}

/*
 * pq_acting_roles_array returns the acting roles of the current user as an
 * oid[] Datum in the current memory context.
 */
Datum
pq_acting_roles_array(void)
{
	Oid		   *roles;
	int			n = pq_acting_roles(&roles);
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = ObjectIdGetDatum(roles[i]);
	return PointerGetDatum(construct_array(d, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}
