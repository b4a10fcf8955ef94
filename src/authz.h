/*-------------------------------------------------------------------------
 *
 * authz.h
 *	  Who may act on a job: a superuser, or a role that has the privileges
 *	  of the role that deferred it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_AUTHZ_H
#define PROCQ_AUTHZ_H

#include "postgres.h"

extern bool pq_may_act_as(Oid deferred_by);
extern void pq_require_job_access(int64 job_id, Oid deferred_by);
extern void pq_require_job_access_by_id(int64 job_id);
extern void pq_require_parents_access(int64 job_id);
extern int	pq_acting_roles(Oid **roles);
extern Datum pq_acting_roles_array(void);

#endif							/* PROCQ_AUTHZ_H */
