/*-------------------------------------------------------------------------
 *
 * shell.c
 *	  Splitting a shell handler's command into words, and running it: a
 *	  child process in its own process group, fed its stdin, with its
 *	  stdout (capped) and the tail of its stderr captured, a timeout, and
 *	  a way for the caller to stop it.
 *
 * This file uses libc and POSIX only, no PostgreSQL headers: it runs in
 * procq's background worker, but test/shell_runner/test_shell.c builds it
 * standalone too.  It allocates with malloc, never palloc, and reports
 * everything through PQShellResult, never with elog.
 *
 * Running a program from a server process takes some care:
 *
 *	- The server has signal handlers, blocked signals and ignored signals
 *	  (SIGPIPE) that a program must not inherit, and hundreds of file
 *	  descriptors (sockets, data files, the latch's pipe), many without
 *	  FD_CLOEXEC.  Between fork and exec the child resets every signal to
 *	  its default, unblocks them all and closes every descriptor above 2.
 *	  All signals stay blocked across fork, so that none of the server's
 *	  handlers can run in the child before that.
 *	- The child only calls async-signal-safe functions and leaves with
 *	  _exit, never exit: the server's atexit and on_proc_exit machinery
 *	  must not run twice.  Everything it needs (environment, PATH buffer)
 *	  is allocated before fork.
 *	- If exec fails, the child writes errno on a close-on-exec pipe; the
 *	  parent reads that pipe until EOF (exec succeeded) or a message.
 *	- The parent never blocks on a pipe: all three are non-blocking and
 *	  served by one poll() loop, so a child writing lots of output while
 *	  we still write its stdin cannot deadlock with us, and output beyond
 *	  the cap is read and thrown away so that the child never blocks.
 *	- A write to a child that closed its stdin must not kill us with
 *	  SIGPIPE: SIGPIPE is blocked around each write, and one that the
 *	  write raised is consumed before it is unblocked again.
 *	- Exit is detected with waitid(WNOWAIT): the child stays a zombie until
 *	  we are done with its process group, so its pid, which is the group's
 *	  id, cannot be reused by another process while we may still kill(-pid).
 *	- Descendants (sleep 30 &) may keep the pipes open after the child has
 *	  exited; they get SIGKILL 100 ms after it exited, and we give up on
 *	  the pipes if even that does not close them (a descendant may have
 *	  left the group).
 *
 * Global state: current_pgid, the process group of the running child, for
 * pq_shell_kill_current and pq_shell_current_pgid.
 *
 *-------------------------------------------------------------------------
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shell.h"

/* How long descendants may hold the pipes open after the child exited. */
#define PIPE_LINGER_MS 100

/* How long we wait for EOF on the pipes after killing those descendants. */
#define PIPE_GIVE_UP_MS 1000

/* Longest sleep in poll(): should_stop is polled at least this often. */
#define POLL_MAX_MS 100

/* poll() timeout while waiting for a child that closed all its pipes. */
#define POLL_WAIT_ONLY_MS 20

/* Bytes read or written per system call. */
#define IO_CHUNK 65536

/* First size of the stdout buffer, which then doubles up to the cap. */
#define OUT_INITIAL 65536

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

/* Where the kill sequence of a running child is. */
typedef enum KillStage
{
	KILL_NONE,					/* not asked to die */
	KILL_TERM_SENT,				/* the group got SIGTERM */
	KILL_KILL_SENT				/* the group got SIGKILL */
} KillStage;

/*
 * The process group (and pid) of the child pq_shell_run is running, or 0.
 * Set by the parent with all signals blocked, right after fork, and reset
 * before the child is reaped, so a signal handler reading it never sees a
 * group id that another process could have been given.
 */
static volatile sig_atomic_t current_pgid = 0;

/*
 * Return the process group of the running child, or 0.  For the worker's
 * signal handlers and its logging; async-signal-safe.
 */
pid_t
pq_shell_current_pgid(void)
{
	return (pid_t) current_pgid;
}

/*
 * Send SIGKILL to the running child's process group, if there is one.
 * Meant for a signal handler (e.g. on SIGTERM from the postmaster), so it
 * only calls kill() and keeps errno intact.  pq_shell_run then sees the
 * child die and reaps it as usual.
 */
void
pq_shell_kill_current(void)
{
	int			save_errno = errno;
	pid_t		pgid = (pid_t) current_pgid;

	if (pgid > 0)
		(void) kill(-pgid, SIGKILL);
	errno = save_errno;
}

/*
 * Is c a blank that separates words in pq_shell_split?
 */
static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\v' || c == '\f';
}

/*
 * Split a command line into words: see shell.h for the rules.
 *
 * The result is one malloc'd block, the pointer array followed by the
 * words, so that the caller needs a single free().  Its size is bounded
 * from the length of the command: there are at most len words (each takes
 * at least one character of the command) and they hold at most len bytes
 * plus their terminators.
 */
char	  **
pq_shell_split(const char *command, char *errbuf, size_t errlen)
{
	size_t		len;
	size_t		max_words;
	char	  **words;
	char	   *dst;
	const char *p;
	int			nwords = 0;
	const char *error = NULL;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (command == NULL)
		command = "";
	len = strlen(command);
	max_words = len + 1;
	words = malloc((max_words + 1) * sizeof(char *) + 2 * len + 1);
	if (words == NULL)
	{
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	dst = (char *) (words + max_words + 1);

	p = command;
	for (;;)
	{
		while (is_blank(*p))
			p++;
		if (*p == '\0')
			break;

		/* one word: up to the next blank outside quotes */
		words[nwords++] = dst;
		while (*p != '\0' && !is_blank(*p) && error == NULL)
		{
			if (*p == '\'')
			{
				p++;
				while (*p != '\0' && *p != '\'')
					*dst++ = *p++;
				if (*p == '\0')
					error = "unterminated single quote";
				else
					p++;
			}
			else if (*p == '"')
			{
				p++;
				while (*p != '\0' && *p != '"')
				{
					if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
						p++;
					*dst++ = *p++;
				}
				if (*p == '\0')
					error = "unterminated double quote";
				else
					p++;
			}
			else if (*p == '\\')
			{
				if (p[1] == '\0')
					error = "trailing backslash";
				else
				{
					*dst++ = p[1];
					p += 2;
				}
			}
			else
				*dst++ = *p++;
		}
		*dst++ = '\0';
		if (error != NULL)
			break;
	}

	if (error == NULL && nwords == 0)
		error = "empty command";
	if (error != NULL)
	{
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "%s", error);
		free(words);
		return NULL;
	}
	words[nwords] = NULL;
	return words;
}

/*
 * Free the buffers of a result filled by pq_shell_run, and make the
 * pointers NULL so that freeing twice is harmless.
 */
void
pq_shell_result_free(PQShellResult *result)
{
	free(result->out);
	result->out = NULL;
	result->out_len = 0;
	free(result->err_tail);
	result->err_tail = NULL;
	result->err_len = 0;
}

/*
 * Milliseconds on the monotonic clock, for timeouts that must not move
 * when someone sets the system time.
 */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
 * Write to the child's stdin without dying of SIGPIPE if it closed it.
 *
 * We must not change the process-wide disposition of SIGPIPE for that, so
 * it is blocked around the write instead; if the write failed with EPIPE
 * and raised a SIGPIPE that was not pending before, it is consumed with a
 * zero-timeout sigtimedwait before the old mask comes back.
 */
static ssize_t
write_no_sigpipe(int fd, const char *buf, size_t len)
{
	sigset_t	pipeset;
	sigset_t	oldset;
	sigset_t	pending;
	bool		was_pending;
	ssize_t		rc;
	int			save_errno;

	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipeset, &oldset);
	sigemptyset(&pending);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;

	rc = write(fd, buf, len);
	save_errno = errno;

	if (rc < 0 && save_errno == EPIPE && !was_pending)
	{
		struct timespec zero = {0, 0};

		while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	sigprocmask(SIG_SETMASK, &oldset, NULL);
	errno = save_errno;
	return rc;
}

/*
 * Append n bytes of stdout to the result: keep them up to stdout_cap,
 * growing the buffer by doubling (so a small output takes little memory
 * whatever the cap), and note when something had to be dropped.
 */
static void
append_stdout(PQShellResult *result, size_t *alloc, size_t cap,
			  const char *buf, size_t n)
{
	size_t		take = 0;

	if (result->out_len < cap)
		take = cap - result->out_len < n ? cap - result->out_len : n;
	if (take > 0 && result->out_len + take + 1 > *alloc)
	{
		size_t		want = *alloc;
		char	   *grown;

		while (want < result->out_len + take + 1)
			want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
		if (cap < SIZE_MAX && want > cap + 1)
			want = cap + 1;
		grown = realloc(result->out, want);
		if (grown == NULL)
			take = 0;			/* out of memory: drop it, say truncated */
		else
		{
			result->out = grown;
			*alloc = want;
		}
	}
	if (take > 0)
	{
		memcpy(result->out + result->out_len, buf, take);
		result->out_len += take;
	}
	if (take < n)
		result->stdout_truncated = true;
}

/*
 * Append n bytes of stderr to the ring that keeps its last
 * PQ_SHELL_ERR_TAIL bytes; *total counts every byte seen, and the next
 * byte goes at *total % PQ_SHELL_ERR_TAIL.
 */
static void
append_stderr(char *ring, uint64_t *total, const char *buf, size_t n)
{
	size_t		pos;
	size_t		first;

	if (n > PQ_SHELL_ERR_TAIL)
	{
		*total += n - PQ_SHELL_ERR_TAIL;
		buf += n - PQ_SHELL_ERR_TAIL;
		n = PQ_SHELL_ERR_TAIL;
	}
	pos = (size_t) (*total % PQ_SHELL_ERR_TAIL);
	first = PQ_SHELL_ERR_TAIL - pos < n ? PQ_SHELL_ERR_TAIL - pos : n;
	memcpy(ring + pos, buf, first);
	memcpy(ring, buf + first, n - first);
	*total += n;
}

/*
 * Copy the stderr ring, oldest byte first, into result->err_tail.  If
 * memory runs out, err_tail stays the empty string it was.
 */
static void
finish_stderr(PQShellResult *result, const char *ring, uint64_t total)
{
	size_t		len = total < PQ_SHELL_ERR_TAIL ? (size_t) total : PQ_SHELL_ERR_TAIL;
	size_t		start = total < PQ_SHELL_ERR_TAIL ? 0 : (size_t) (total % PQ_SHELL_ERR_TAIL);
	char	   *tail;

	if (len == 0)
		return;
	tail = realloc(result->err_tail, len + 1);
	if (tail == NULL)
		return;
	memcpy(tail, ring + start, len - start);
	memcpy(tail + (len - start), ring, start);
	tail[len] = '\0';
	result->err_tail = tail;
	result->err_len = len;
}

/*
 * Close *fd if it is open, and mark it closed.
 */
static void
close_fd(int *fd)
{
	if (*fd >= 0)
	{
		close(*fd);
		*fd = -1;
	}
}

/*
 * Send sig to the child's process group.  The child may not have called
 * setpgid itself yet, but the parent did right after fork, so the group
 * exists as long as the child does (it is not reaped before we are done).
 */
static void
signal_group(pid_t pid, int sig)
{
	(void) kill(-pid, sig);
}

/*
 * Fill result->exit_code and term_signal from a wait status.
 */
static void
decode_status(PQShellResult *result, int status)
{
	if (WIFEXITED(status))
	{
		result->exit_code = WEXITSTATUS(status);
		result->term_signal = 0;
	}
	else if (WIFSIGNALED(status))
	{
		result->exit_code = -1;
		result->term_signal = WTERMSIG(status);
	}
}

/*
 * Run a program and wait for it: see shell.h for the contract.
 *
 * After a successful exec the parent runs one poll() loop until the child
 * has exited and both output pipes are at EOF (or given up on).  Each turn:
 * check whether the child exited (without reaping it), start or continue
 * the kill sequence if the timeout passed or should_stop says so, kill the
 * descendants that hold the pipes open after the child exited, then wait
 * for the pipes, at most POLL_MAX_MS, and move data.
 */
void
pq_shell_run(char *const argv[], char *const extra_env[],
			 const char *stdin_data, size_t stdin_len,
			 int timeout_ms, int kill_grace_ms, size_t stdout_cap,
			 PQShellStopFunc should_stop, void *arg,
			 PQShellResult *result)
{
	char	  **envp = NULL;
	const char *path = NULL;
	char	   *pathbuf = NULL;
	int			in_pipe[2] = {-1, -1};
	int			out_pipe[2] = {-1, -1};
	int			err_pipe[2] = {-1, -1};
	int			exec_pipe[2] = {-1, -1};
	int			child_fds[4];
	long		max_fd;
	sigset_t	all;
	sigset_t	oldmask;
	struct sigaction old_chld;
	bool		chld_changed = false;
	pid_t		pid;
	pid_t		parent;
	ChildFailure failure;
	size_t		got;
	int			in_fd;
	int			out_fd;
	int			err_fd;
	size_t		in_off = 0;
	size_t		out_alloc;
	char		ring[PQ_SHELL_ERR_TAIL];
	uint64_t	err_total = 0;
	char		buf[IO_CHUNK];
	bool		exited = false;
	bool		reaped = false;
	int			status = 0;
	KillStage	kill_stage = KILL_NONE;
	bool		linger_killed = false;
	int64_t		start;
	int64_t		exited_at = 0;
	int64_t		term_at = 0;
	int64_t		linger_killed_at = 0;
	int64_t		next_stop_check;
	int			i;

	memset(result, 0, sizeof(*result));
	result->exit_code = -1;
	out_alloc = stdout_cap < OUT_INITIAL ? stdout_cap + 1 : OUT_INITIAL + 1;
	result->out = malloc(out_alloc);
	result->err_tail = malloc(1);
	if (result->out == NULL || result->err_tail == NULL)
	{
		pq_shell_result_free(result);
		snprintf(result->start_error, sizeof(result->start_error),
				 "out of memory");
		return;
	}
	result->out[0] = '\0';
	result->err_tail[0] = '\0';

	if (argv == NULL || argv[0] == NULL)
	{
		snprintf(result->start_error, sizeof(result->start_error),
				 "empty command");
		return;
	}

	/* everything the child needs is allocated now: it must not malloc */
	envp = build_environment(extra_env, &path, result->start_error,
							 sizeof(result->start_error));
	if (envp == NULL)
		return;
	if (path == NULL)
		path = DEFAULT_PATH;
	pathbuf = malloc(strlen(path) + strlen(argv[0]) + 2);
	if (pathbuf == NULL)
	{
		snprintf(result->start_error, sizeof(result->start_error),
				 "out of memory");
		free(envp);
		return;
	}
	max_fd = sysconf(_SC_OPEN_MAX);
	if (max_fd < 0 || max_fd > MAX_FD_TO_CLOSE)
		max_fd = MAX_FD_TO_CLOSE;

	/*
	 * All pipes close-on-exec: the parent's ends must not leak into other
	 * programs the server starts, and the child's ends are dup2'ed onto 0,
	 * 1 and 2, which clears the flag there.
	 */
	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0 ||
		pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(exec_pipe, O_CLOEXEC) < 0)
	{
		snprintf(result->start_error, sizeof(result->start_error),
				 "could not create pipe: %s", strerror(errno));
		goto cleanup;
	}

	/*
	 * If SIGCHLD is ignored, the kernel reaps children by itself and we
	 * could not learn the exit status; restore the default for the run.
	 */
	if (sigaction(SIGCHLD, NULL, &old_chld) == 0 &&
		(old_chld.sa_handler == SIG_IGN || (old_chld.sa_flags & SA_NOCLDWAIT)))
	{
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		if (sigaction(SIGCHLD, &dfl, NULL) == 0)
			chld_changed = true;
	}

	/*
	 * Block every signal across fork: the server's handlers must not run
	 * in the child before it resets them, and in the parent current_pgid
	 * must be set before a handler can want it.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &oldmask);
	parent = getpid();
	pid = fork();
	if (pid == 0)
	{
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
		child_fds[0] = in_pipe[0];
		child_fds[1] = out_pipe[1];
		child_fds[2] = err_pipe[1];
		child_fds[3] = exec_pipe[1];
		child_exec(argv, envp, path, pathbuf, child_fds, max_fd);
		_exit(127);				/* not reached */
	}
	if (pid < 0)
	{
		int			save_errno = errno;

		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		snprintf(result->start_error, sizeof(result->start_error),
				 "could not fork: %s", strerror(save_errno));
		goto cleanup;
	}
	/* also here, so that the group exists before anyone may kill it */
	(void) setpgid(pid, pid);
	current_pgid = pid;
	sigprocmask(SIG_SETMASK, &oldmask, NULL);

	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[1]);
	close_fd(&exec_pipe[1]);

	/* EOF on the error pipe: exec succeeded; else the child says why not */
	got = 0;
	while (got < sizeof(failure))
	{
		ssize_t		rc = read(exec_pipe[0], (char *) &failure + got,
							  sizeof(failure) - got);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		got += (size_t) rc;
	}
	close_fd(&exec_pipe[0]);
	if (got == sizeof(failure))
	{
		if (failure.stage == CHILD_EXEC)
			snprintf(result->start_error, sizeof(result->start_error),
					 "could not execute \"%s\": %s",
					 argv[0], strerror(failure.err));
		else
			snprintf(result->start_error, sizeof(result->start_error),
					 "could not set up the child process: %s",
					 strerror(failure.err));
		current_pgid = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		goto cleanup;
	}

	in_fd = in_pipe[1];
	out_fd = out_pipe[0];
	err_fd = err_pipe[0];
	in_pipe[1] = out_pipe[0] = err_pipe[0] = -1;
	fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
	fcntl(err_fd, F_SETFL, fcntl(err_fd, F_GETFL) | O_NONBLOCK);
	if (stdin_data == NULL || stdin_len == 0)
		close_fd(&in_fd);

	start = now_ms();
	next_stop_check = start;
	for (;;)
	{
		struct pollfd pfd[3];
		int			nfds = 0;
		int			wait_ms = POLL_MAX_MS;
		int64_t		now = now_ms();

		/* exited?  WNOWAIT: it stays a zombie, keeping its group id ours */
		if (!exited)
		{
			siginfo_t	si;

			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
			{
				if (si.si_pid == pid)
					exited = true;
			}
			else if (errno == ECHILD)
				exited = reaped = true; /* reaped by someone else */
			if (exited)
			{
				exited_at = now;
				close_fd(&in_fd);
			}
		}

		if (exited)
		{
			if (out_fd < 0 && err_fd < 0)
				break;
			if (!linger_killed && now - exited_at >= PIPE_LINGER_MS)
			{
				/* descendants hold the pipes open: kill them */
				signal_group(pid, SIGKILL);
				linger_killed = true;
				linger_killed_at = now;
			}
			else if (linger_killed && now - linger_killed_at >= PIPE_GIVE_UP_MS)
				break;			/* someone left the group with our pipes */
			wait_ms = linger_killed ?
				(int) (linger_killed_at + PIPE_GIVE_UP_MS - now) :
				(int) (exited_at + PIPE_LINGER_MS - now);
		}
		else
		{
			if (kill_stage == KILL_NONE)
			{
				if (timeout_ms > 0 && now - start >= timeout_ms)
					result->timed_out = true;
				else if (should_stop != NULL && now >= next_stop_check)
				{
					if (should_stop(arg))
						result->aborted = true;
					now = now_ms();
					next_stop_check = now + POLL_MAX_MS;
				}
				if (result->timed_out || result->aborted)
				{
					if (kill_grace_ms > 0)
					{
						signal_group(pid, SIGTERM);
						kill_stage = KILL_TERM_SENT;
						term_at = now;
					}
					else
					{
						signal_group(pid, SIGKILL);
						kill_stage = KILL_KILL_SENT;
					}
				}
			}
			if (kill_stage == KILL_TERM_SENT && now - term_at >= kill_grace_ms)
			{
				signal_group(pid, SIGKILL);
				kill_stage = KILL_KILL_SENT;
			}

			/* sleep no longer than the next thing we must do */
			if (kill_stage == KILL_NONE)
			{
				if (timeout_ms > 0 && start + timeout_ms - now < wait_ms)
					wait_ms = (int) (start + timeout_ms - now);
				if (should_stop != NULL && next_stop_check - now < wait_ms)
					wait_ms = (int) (next_stop_check - now);
			}
			else if (kill_stage == KILL_TERM_SENT &&
					 term_at + kill_grace_ms - now < wait_ms)
				wait_ms = (int) (term_at + kill_grace_ms - now);
		}

		if (in_fd >= 0)
		{
			pfd[nfds].fd = in_fd;
			pfd[nfds].events = POLLOUT;
			pfd[nfds++].revents = 0;
		}
		if (out_fd >= 0)
		{
			pfd[nfds].fd = out_fd;
			pfd[nfds].events = POLLIN;
			pfd[nfds++].revents = 0;
		}
		if (err_fd >= 0)
		{
			pfd[nfds].fd = err_fd;
			pfd[nfds].events = POLLIN;
			pfd[nfds++].revents = 0;
		}
		/* with no pipe left, only waitid tells us the child exited */
		if (nfds == 0 && wait_ms > POLL_WAIT_ONLY_MS)
			wait_ms = POLL_WAIT_ONLY_MS;
		if (wait_ms < 0)
			wait_ms = 0;

		if (poll(pfd, (nfds_t) nfds, wait_ms) < 0)
		{
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* cannot happen with valid arguments; do not spin, kill it */
			signal_group(pid, SIGKILL);
			break;
		}

		for (i = 0; i < nfds; i++)
		{
			ssize_t		rc;

			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == in_fd)
			{
				size_t		n = stdin_len - in_off;

				rc = write_no_sigpipe(in_fd, stdin_data + in_off,
									  n < IO_CHUNK ? n : IO_CHUNK);
				if (rc > 0)
					in_off += (size_t) rc;
				if (in_off == stdin_len ||
					(rc < 0 && errno != EAGAIN && errno != EINTR))
					close_fd(&in_fd);	/* done, or the child closed it */
			}
			else
			{
				rc = read(pfd[i].fd, buf, sizeof(buf));
				if (rc > 0 && pfd[i].fd == out_fd)
					append_stdout(result, &out_alloc, stdout_cap, buf, (size_t) rc);
				else if (rc > 0)
					append_stderr(ring, &err_total, buf, (size_t) rc);
				else if (rc == 0 || (errno != EAGAIN && errno != EINTR))
				{
					if (pfd[i].fd == out_fd)
						close_fd(&out_fd);
					else
						close_fd(&err_fd);
				}
			}
		}
	}

	close_fd(&in_fd);
	close_fd(&out_fd);
	close_fd(&err_fd);

	/*
	 * Kill whatever is left of the group (harmless to the zombie child),
	 * then forget the group before reaping: after that its id may be given
	 * to another process.
	 */
	signal_group(pid, SIGKILL);
	current_pgid = 0;
	if (!reaped)
	{
		while (waitpid(pid, &status, 0) < 0)
		{
			if (errno != EINTR)
			{
				reaped = true;	/* ECHILD: status unknown */
				break;
			}
		}
		if (!reaped)
			decode_status(result, status);
	}
	result->out[result->out_len] = '\0';
	finish_stderr(result, ring, err_total);

cleanup:
	if (chld_changed)
		sigaction(SIGCHLD, &old_chld, NULL);
	close_fd(&in_pipe[0]);
	close_fd(&in_pipe[1]);
	close_fd(&out_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[0]);
	close_fd(&err_pipe[1]);
	close_fd(&exec_pipe[0]);
	close_fd(&exec_pipe[1]);
	free(pathbuf);
	free(envp);
}
