/*-------------------------------------------------------------------------
 *
 * shell_spawn.c
 *	  Starting a shell handler's program: its environment, the fork, and
 *	  what the child does between fork and exec.
 *
 * libc only, like shell.c (see there for why running a program from a
 * server process takes care).  The child only calls async-signal-safe
 * functions and leaves with _exit; everything it needs is allocated
 * before fork.  If exec fails, the child writes errno on a close-on-exec
 * pipe; the parent reads that pipe until EOF (exec succeeded) or a
 * message.
 *
 *-------------------------------------------------------------------------
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shell_int.h"

/* Upper bound of the descriptors closed one by one if close_range fails. */
#define MAX_FD_TO_CLOSE 65536

/* Default PATH when the environment has none. */
#define DEFAULT_PATH "/usr/bin:/bin"

/* What a child that could not exec writes on the error pipe. */
typedef struct ChildFailure
{
	int			stage;			/* CHILD_SETUP or CHILD_EXEC */
	int			err;			/* errno */
} ChildFailure;

#define CHILD_SETUP 1
#define CHILD_EXEC 2

/*
 * Length of the name part of a "NAME=value" string (all of it if there is
 * no '=').
 */
static size_t
env_name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');

	return eq != NULL ? (size_t) (eq - entry) : strlen(entry);
}

/*
 * Do two "NAME=value" strings set the same variable?
 */
static bool
env_same_name(const char *a, const char *b)
{
	size_t		la = env_name_len(a);

	return la == env_name_len(b) && strncmp(a, b, la) == 0;
}

/*
 * Build the child's environment: the current one, minus the variables
 * that extra_env sets, plus extra_env (the last of several entries with the
 * same name wins).  Only the pointer array is allocated; the strings are
 * the caller's and environ's, which stay valid until the fork.  Also points
 * *path at the value of PATH in it (NULL if it has none).
 *
 * Returns NULL and a message in errbuf if an entry of extra_env is not
 * "NAME=value" or malloc fails.
 */
static char **
build_environment(char *const extra_env[], const char **path,
				  char *errbuf, size_t errlen)
{
	size_t		nenv = 0;
	size_t		nextra = 0;
	size_t		n = 0;
	size_t		i;
	size_t		j;
	char	  **envp;

	if (environ != NULL)
		while (environ[nenv] != NULL)
			nenv++;
	if (extra_env != NULL)
		while (extra_env[nextra] != NULL)
		{
			const char *eq = strchr(extra_env[nextra], '=');

			if (eq == NULL || eq == extra_env[nextra])
			{
				snprintf(errbuf, errlen,
						 "invalid environment entry \"%s\": expected NAME=value",
						 extra_env[nextra]);
				return NULL;
			}
			nextra++;
		}

	envp = malloc((nenv + nextra + 1) * sizeof(char *));
	if (envp == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}

	for (i = 0; i < nenv; i++)
	{
		bool		overridden = false;

		for (j = 0; j < nextra && !overridden; j++)
			overridden = env_same_name(environ[i], extra_env[j]);
		if (!overridden)
			envp[n++] = environ[i];
	}
	for (i = 0; i < nextra; i++)
	{
		bool		overridden = false;

		for (j = i + 1; j < nextra && !overridden; j++)
			overridden = env_same_name(extra_env[i], extra_env[j]);
		if (!overridden)
			envp[n++] = extra_env[i];
	}
	envp[n] = NULL;

	*path = NULL;
	for (i = 0; i < n; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			*path = envp[i] + 5;
	return envp;
}

/*
 * In the child: tell the parent why we could not exec, and leave.  Always
 * _exit: exit() would run the server's atexit handlers in the child.
 */
static void
child_fail(int errfd, int stage, int err)
{
	ChildFailure msg;
	const char *p = (const char *) &msg;
	size_t		left = sizeof(msg);

	memset(&msg, 0, sizeof(msg));
	msg.stage = stage;
	msg.err = err;
	while (left > 0)
	{
		ssize_t		rc = write(errfd, p, left);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		p += rc;
		left -= (size_t) rc;
	}
	_exit(127);
}

/*
 * In the child: close every descriptor from 3 up except keep_fd (which is
 * above 2).  The server opens many descriptors without FD_CLOEXEC, so
 * closing them is the only way not to leak them into the program.  Uses
 * close_range where the kernel has it, else closes them one by one up to
 * max_fd (computed by the parent: sysconf is not async-signal-safe).
 */
static void
child_close_fds(int keep_fd, long max_fd)
{
	long		fd;

#ifdef SYS_close_range
	if ((keep_fd == 3 ||
		 syscall(SYS_close_range, 3U, (unsigned int) keep_fd - 1, 0U) == 0) &&
		syscall(SYS_close_range, (unsigned int) keep_fd + 1, ~0U, 0U) == 0)
		return;
#endif
	for (fd = 3; fd < max_fd; fd++)
		if (fd != keep_fd)
			(void) close((int) fd);
}

/*
 * In the child, between fork and exec: set up the process, then exec the
 * program, searching PATH as execvp would (skipping directories where it
 * is missing, remembering EACCES).  Never returns.
 *
 * fds are the child's ends of the stdin, stdout and stderr pipes and the
 * write end of the error pipe; pathbuf has room for any directory of path
 * plus "/" plus argv[0].
 */
static void
child_exec(char *const argv[], char *const envp[], const char *path,
		   char *pathbuf, int fds[4], long max_fd)
{
	sigset_t	none;
	struct sigaction sa;
	int			sig;
	int			i;
	const char *p;
	bool		eacces = false;

	/*
	 * Move our descriptors above 2 first, so that the dup2 calls below
	 * cannot overwrite one of them (a server may have 0, 1 or 2 closed, so
	 * pipe() may have returned one of those).  F_DUPFD_CLOEXEC: the error
	 * pipe must stay close-on-exec.
	 */
	for (i = 0; i < 4; i++)
	{
		if (fds[i] <= 2)
		{
			int			nfd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

			if (nfd < 0)
				child_fail(fds[3], CHILD_SETUP, errno);
			fds[i] = nfd;
		}
	}

	/* our own process group, so that it can be killed as a whole */
	(void) setpgid(0, 0);

	/*
	 * Default dispositions for every signal (handlers would reset at exec
	 * anyway, but ignored signals such as the server's SIGPIPE would not),
	 * then unblock them all.  Signals sent to us meanwhile stay pending and
	 * are delivered now, with their default action.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
	{
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		(void) sigaction(sig, &sa, NULL);	/* EINVAL for reserved ones */
	}
	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);

	for (i = 0; i < 3; i++)
	{
		while (dup2(fds[i], i) < 0)
		{
			if (errno != EINTR)
				child_fail(fds[3], CHILD_SETUP, errno);
		}
	}
	child_close_fds(fds[3], max_fd);

	if (strchr(argv[0], '/') != NULL)
	{
		execve(argv[0], argv, envp);
		child_fail(fds[3], CHILD_EXEC, errno);
	}
	if (argv[0][0] == '\0')
		child_fail(fds[3], CHILD_EXEC, ENOENT);

	p = path;
	for (;;)
	{
		const char *colon = strchr(p, ':');
		size_t		dirlen = colon != NULL ? (size_t) (colon - p) : strlen(p);
		size_t		namelen = strlen(argv[0]);

		/* an empty element means the current directory, as in execvp */
		if (dirlen > 0)
		{
			/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): the name and its NUL follow */
			memcpy(pathbuf, p, dirlen);
			pathbuf[dirlen++] = '/';
		}
		memcpy(pathbuf + dirlen, argv[0], namelen + 1);
		execve(pathbuf, argv, envp);
		switch (errno)
		{
			case EACCES:
				eacces = true;
				break;
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ELOOP:
			case ENAMETOOLONG:
			case ENODEV:
			case ETIMEDOUT:
				break;
			default:
				child_fail(fds[3], CHILD_EXEC, errno);
		}
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	child_fail(fds[3], CHILD_EXEC, eacces ? EACCES : ENOENT);
}

/*
 * read_exec_failure reads the error pipe until EOF (exec succeeded: returns
 * false) or a whole ChildFailure (returns true).
 */
static bool
read_exec_failure(int fd, ChildFailure *failure)
{
	size_t		got = 0;

	while (got < sizeof(*failure))
	{
		ssize_t		rc = read(fd, (char *) failure + got, sizeof(*failure) - got);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		got += (size_t) rc;
	}
	return got == sizeof(*failure);
}

/*
 * fork_child forks with every signal blocked (the server's handlers must
 * not run in the child before it resets them, and in the parent *pgid must
 * be set before a handler can want it) and runs child_exec in the child.
 * pipes are the stdin, stdout, stderr and exec-error pipes.  Returns the
 * child's pid, or -1 with errno set.
 */
static pid_t
fork_child(char *const argv[], char *const envp[], const char *path,
		   char *pathbuf, int pipes[4][2], long max_fd,
		   volatile sig_atomic_t *pgid)
{
	sigset_t	all;
	sigset_t	oldmask;
	pid_t		parent = getpid();
	pid_t		pid;
	int			save_errno;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &oldmask);
	pid = fork();
	if (pid == 0)
	{
		int			child_fds[4];

#ifdef __linux__
		/*
		 * If the worker dies without cleaning up (SIGKILL, a crash), the
		 * kernel kills the child, so that a recovered job cannot run twice
		 * at once.  The parent may already be gone: then exit now.
		 */
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
#endif
		child_fds[0] = pipes[0][0];
		child_fds[1] = pipes[1][1];
		child_fds[2] = pipes[2][1];
		child_fds[3] = pipes[3][1];
		child_exec(argv, envp, path, pathbuf, child_fds, max_fd);
		_exit(127);				/* not reached */
	}
	save_errno = errno;
	if (pid > 0)
	{
		/* also here, so that the group exists before anyone may kill it */
		(void) setpgid(pid, pid);
		*pgid = pid;
	}
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	errno = save_errno;
	return pid;
}

/*
 * Start a program: see shell_int.h.
 *
 * All pipes are close-on-exec: the parent's ends must not leak into other
 * programs the server starts, and the child's ends are dup2'ed onto 0, 1
 * and 2, which clears the flag there.
 */
bool
pq_shell_spawn(char *const argv[], char *const extra_env[],
			   volatile sig_atomic_t *pgid, PQShellChild *child,
			   char *errbuf, size_t errlen)
{
	char	  **envp;
	const char *path = NULL;
	char	   *pathbuf;
	int			pipes[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
	long		max_fd;
	pid_t		pid = -1;
	ChildFailure failure;
	bool		started = false;

	envp = build_environment(extra_env, &path, errbuf, errlen);
	if (envp == NULL)
		return false;
	if (path == NULL)
		path = DEFAULT_PATH;
	pathbuf = malloc(strlen(path) + strlen(argv[0]) + 2);
	if (pathbuf == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		free(envp);
		return false;
	}
	max_fd = sysconf(_SC_OPEN_MAX);
	if (max_fd < 0 || max_fd > MAX_FD_TO_CLOSE)
		max_fd = MAX_FD_TO_CLOSE;

	for (int i = 0; i < 4; i++)
		if (pipe2(pipes[i], O_CLOEXEC) < 0)
		{
			snprintf(errbuf, errlen, "could not create pipe: %s", strerror(errno));
			goto cleanup;
		}

	pid = fork_child(argv, envp, path, pathbuf, pipes, max_fd, pgid);
	if (pid < 0)
	{
		snprintf(errbuf, errlen, "could not fork: %s", strerror(errno));
		goto cleanup;
	}
	pq_shell_close_fd(&pipes[0][0]);
	pq_shell_close_fd(&pipes[1][1]);
	pq_shell_close_fd(&pipes[2][1]);
	pq_shell_close_fd(&pipes[3][1]);

	/* EOF on the error pipe: exec succeeded; else the child says why not */
	if (read_exec_failure(pipes[3][0], &failure))
	{
		int			status;

		if (failure.stage == CHILD_EXEC)
			snprintf(errbuf, errlen, "could not execute \"%s\": %s",
					 argv[0], strerror(failure.err));
		else
			snprintf(errbuf, errlen, "could not set up the child process: %s",
					 strerror(failure.err));
		*pgid = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		goto cleanup;
	}

	child->pid = pid;
	child->in_fd = pipes[0][1];
	child->out_fd = pipes[1][0];
	child->err_fd = pipes[2][0];
	pipes[0][1] = pipes[1][0] = pipes[2][0] = -1;
	fcntl(child->in_fd, F_SETFL, fcntl(child->in_fd, F_GETFL) | O_NONBLOCK);
	fcntl(child->out_fd, F_SETFL, fcntl(child->out_fd, F_GETFL) | O_NONBLOCK);
	fcntl(child->err_fd, F_SETFL, fcntl(child->err_fd, F_GETFL) | O_NONBLOCK);
	started = true;

cleanup:
	for (int i = 0; i < 4; i++)
	{
		pq_shell_close_fd(&pipes[i][0]);
		pq_shell_close_fd(&pipes[i][1]);
	}
	free(pathbuf);
	free(envp);
	return started;
}
