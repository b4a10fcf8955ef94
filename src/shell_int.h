/*-------------------------------------------------------------------------
 *
 * shell_int.h
 *	  What shell.c (running a program) and shell_spawn.c (starting it)
 *	  share.  Internal to the shell runner; libc only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_SHELL_INT_H
#define PROCQ_SHELL_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

/* A started child, as pq_shell_spawn leaves it. */
typedef struct PQShellChild
{
	pid_t		pid;			/* also its process group */
	int			in_fd;			/* write end of its stdin (non-blocking) */
	int			out_fd;			/* read end of its stdout (non-blocking) */
	int			err_fd;			/* read end of its stderr (non-blocking) */
} PQShellChild;

/*
 * Start argv[0] (searched in PATH) with the current environment plus
 * extra_env, in its own process group, and wait until it has exec'ed.
 * *pgid is set to the child's pid while every signal is still blocked,
 * right after fork.  Returns false with a message in errbuf when it could
 * not be started; the child, if any, has then been reaped and *pgid is 0.
 */
extern bool pq_shell_spawn(char *const argv[], char *const extra_env[],
						   volatile sig_atomic_t *pgid, PQShellChild *child,
						   char *errbuf, size_t errlen);

/*
 * Close *fd if it is open, and mark it closed.
 */
static inline void
pq_shell_close_fd(int *fd)
{
	if (*fd >= 0)
	{
		close(*fd);
		*fd = -1;
	}
}

#endif							/* PROCQ_SHELL_INT_H */
