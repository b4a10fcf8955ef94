/*-------------------------------------------------------------------------
 *
 * shell.c
 *	  Running a shell handler's program: a child process in its own process
 *	  group (started by shell_spawn.c), fed its stdin, with its stdout
 *	  (capped) and the tail of its stderr captured, a timeout, and a way for
 *	  the caller to stop it.
 *
 * shell.c, shell_spawn.c and shell_split.c use libc and POSIX only, no
 * PostgreSQL headers: they run in procq's background worker, but
 * test/shell_runner/test_shell.c builds them standalone too.  They
 * allocate with malloc, never palloc, and report everything through
 * PQShellResult, never with elog.
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
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shell.h"
#include "shell_int.h"

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

/* Everything pq_shell_run keeps track of while its child runs. */
typedef struct RunState
{
	PQShellChild child;
	const char *stdin_data;
	size_t		stdin_len;
	size_t		in_off;			/* bytes of stdin_data written */
	int			timeout_ms;
	int			kill_grace_ms;
	size_t		stdout_cap;
	size_t		out_alloc;		/* size of result->out */
	PQShellStopFunc should_stop;
	void	   *arg;
	char		ring[PQ_SHELL_ERR_TAIL];	/* the tail of stderr */
	uint64_t	err_total;		/* bytes of stderr seen */
	bool		exited;			/* the child exited (not reaped yet) */
	bool		reaped;			/* someone reaped it: status unknown */
	KillStage	kill_stage;
	bool		linger_killed;	/* descendants holding the pipes got SIGKILL */
	int64_t		start;
	int64_t		exited_at;
	int64_t		term_at;
	int64_t		linger_killed_at;
	int64_t		next_stop_check;
} RunState;

/*
 * check_exited notes whether the child has exited, without reaping it
 * (WNOWAIT: it stays a zombie, keeping its group id ours); its stdin is
 * closed then.
 */
static void
check_exited(RunState *st, int64_t now)
{
	siginfo_t	si;

	if (st->exited)
		return;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t) st->child.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
	{
		if (si.si_pid == st->child.pid)
			st->exited = true;
	}
	else if (errno == ECHILD)
		st->exited = st->reaped = true; /* reaped by someone else */
	if (st->exited)
	{
		st->exited_at = now;
		pq_shell_close_fd(&st->child.in_fd);
	}
}

/*
 * linger_step runs after the child exited: descendants (sleep 30 &) may
 * keep the pipes open; they get SIGKILL PIPE_LINGER_MS after the exit, and
 * we give up on the pipes PIPE_GIVE_UP_MS after that (a descendant may
 * have left the group).  Returns false when the loop is done; else sets
 * *wait_ms to when this step is due again.
 */
static bool
linger_step(RunState *st, int64_t now, int *wait_ms)
{
	if (st->child.out_fd < 0 && st->child.err_fd < 0)
		return false;
	if (!st->linger_killed && now - st->exited_at >= PIPE_LINGER_MS)
	{
		signal_group(st->child.pid, SIGKILL);
		st->linger_killed = true;
		st->linger_killed_at = now;
	}
	else if (st->linger_killed && now - st->linger_killed_at >= PIPE_GIVE_UP_MS)
		return false;
	*wait_ms = st->linger_killed ?
		(int) (st->linger_killed_at + PIPE_GIVE_UP_MS - now) :
		(int) (st->exited_at + PIPE_LINGER_MS - now);
	return true;
}

/*
 * kill_step runs while the child is alive: once the timeout passed or
 * should_stop says PQ_SHELL_STOP, the group gets SIGTERM, and SIGKILL
 * kill_grace_ms later (at once if kill_grace_ms <= 0); once should_stop
 * says PQ_SHELL_STOP_NOW, before or during that grace, SIGKILL at once.
 * Lowers *wait_ms to when this step is due again.
 */
static void
kill_step(RunState *st, PQShellResult *result, int64_t now, int *wait_ms)
{
	PQShellStop stop = PQ_SHELL_GO_ON;

	if (st->kill_stage != KILL_KILL_SENT && st->should_stop != NULL &&
		now >= st->next_stop_check)
	{
		stop = st->should_stop(st->arg);
		now = now_ms();
		st->next_stop_check = now + POLL_MAX_MS;
	}
	if (st->kill_stage == KILL_NONE)
	{
		if (st->timeout_ms > 0 && now - st->start >= st->timeout_ms)
			result->timed_out = true;
		else if (stop != PQ_SHELL_GO_ON)
			result->aborted = true;
		if (result->timed_out || result->aborted)
		{
			/*
			 * PQ_SHELL_STOP_NOW means no grace at all: a SIGTERM sent just
			 * before the SIGKILL would reach a program whenever this process
			 * is preempted between the two, and a program that traps it
			 * would run its handler.
			 */
			bool		grace = st->kill_grace_ms > 0 && stop != PQ_SHELL_STOP_NOW;

			signal_group(st->child.pid, grace ? SIGTERM : SIGKILL);
			st->kill_stage = grace ? KILL_TERM_SENT : KILL_KILL_SENT;
			st->term_at = now;
		}
	}
	if (st->kill_stage == KILL_TERM_SENT &&
		(stop == PQ_SHELL_STOP_NOW || now - st->term_at >= st->kill_grace_ms))
	{
		signal_group(st->child.pid, SIGKILL);
		st->kill_stage = KILL_KILL_SENT;
	}

	/* sleep no longer than the next thing we must do */
	if (st->kill_stage == KILL_NONE)
	{
		if (st->timeout_ms > 0 && st->start + st->timeout_ms - now < *wait_ms)
			*wait_ms = (int) (st->start + st->timeout_ms - now);
	}
	else if (st->kill_stage == KILL_TERM_SENT &&
			 st->term_at + st->kill_grace_ms - now < *wait_ms)
		*wait_ms = (int) (st->term_at + st->kill_grace_ms - now);
	if (st->kill_stage != KILL_KILL_SENT && st->should_stop != NULL &&
		st->next_stop_check - now < *wait_ms)
		*wait_ms = (int) (st->next_stop_check - now);
}

/*
 * move_data serves one ready pipe: writes the next chunk of stdin, or
 * reads a chunk of stdout or stderr; closes a pipe at EOF or on error.
 */
static void
move_data(RunState *st, PQShellResult *result, int fd)
{
	char		buf[IO_CHUNK];
	ssize_t		rc;

	if (fd == st->child.in_fd)
	{
		size_t		n = st->stdin_len - st->in_off;

		rc = write_no_sigpipe(fd, st->stdin_data + st->in_off,
							  n < IO_CHUNK ? n : IO_CHUNK);
		if (rc > 0)
			st->in_off += (size_t) rc;
		if (st->in_off == st->stdin_len ||
			(rc < 0 && errno != EAGAIN && errno != EINTR))
			pq_shell_close_fd(&st->child.in_fd);	/* done, or the child closed it */
		return;
	}
	rc = read(fd, buf, sizeof(buf));
	if (rc > 0 && fd == st->child.out_fd)
		append_stdout(result, &st->out_alloc, st->stdout_cap, buf, (size_t) rc);
	else if (rc > 0)
		append_stderr(st->ring, &st->err_total, buf, (size_t) rc);
	else if (rc == 0 || (errno != EAGAIN && errno != EINTR))
	{
		if (fd == st->child.out_fd)
			pq_shell_close_fd(&st->child.out_fd);
		else
			pq_shell_close_fd(&st->child.err_fd);
	}
}

/*
 * pump waits up to wait_ms for the open pipes and moves data.  Returns
 * false if poll failed for good (then the group got SIGKILL).
 */
static bool
pump(RunState *st, PQShellResult *result, int wait_ms)
{
	struct pollfd pfd[3];
	int			nfds = 0;
	int			fds[3] = {st->child.in_fd, st->child.out_fd, st->child.err_fd};

	for (int i = 0; i < 3; i++)
	{
		if (fds[i] < 0)
			continue;
		pfd[nfds].fd = fds[i];
		pfd[nfds].events = i == 0 ? POLLOUT : POLLIN;
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
			return true;
		/* cannot happen with valid arguments; do not spin, kill it */
		signal_group(st->child.pid, SIGKILL);
		return false;
	}
	for (int i = 0; i < nfds; i++)
		if (pfd[i].revents != 0)
			move_data(st, result, pfd[i].fd);
	return true;
}

/*
 * reap kills whatever is left of the group (harmless to the zombie child),
 * then forgets the group before reaping: after that its id may be given to
 * another process.  Fills in the exit status and the stderr tail.
 */
static void
reap(RunState *st, PQShellResult *result)
{
	int			status = 0;

	pq_shell_close_fd(&st->child.in_fd);
	pq_shell_close_fd(&st->child.out_fd);
	pq_shell_close_fd(&st->child.err_fd);
	signal_group(st->child.pid, SIGKILL);
	current_pgid = 0;
	if (!st->reaped)
	{
		while (waitpid(st->child.pid, &status, 0) < 0)
		{
			if (errno != EINTR)
			{
				st->reaped = true;	/* ECHILD: status unknown */
				break;
			}
		}
		if (!st->reaped)
			decode_status(result, status);
	}
	result->out[result->out_len] = '\0';
	finish_stderr(result, st->ring, st->err_total);
}

/*
 * result_init sets *result to "not started" with empty outputs; returns
 * false (start_error "out of memory") if even that cannot be allocated.
 */
static bool
result_init(PQShellResult *result, size_t out_alloc)
{
	memset(result, 0, sizeof(*result));
	result->exit_code = -1;
	result->out = malloc(out_alloc);
	result->err_tail = malloc(1);
	if (result->out == NULL || result->err_tail == NULL)
	{
		pq_shell_result_free(result);
		snprintf(result->start_error, sizeof(result->start_error),
				 "out of memory");
		return false;
	}
	result->out[0] = '\0';
	result->err_tail[0] = '\0';
	return true;
}

/*
 * Run a program and wait for it: see shell.h for the contract.
 *
 * After a successful start the parent runs one loop until the child has
 * exited and both output pipes are at EOF (or given up on).  Each turn:
 * check whether the child exited (without reaping it), then either kill
 * the descendants that hold the pipes open after it exited, or start or
 * continue the kill sequence if the timeout passed or should_stop says
 * so; then wait for the pipes, at most POLL_MAX_MS, and move data.
 */
void
pq_shell_run(char *const argv[], char *const extra_env[],
			 const char *stdin_data, size_t stdin_len,
			 int timeout_ms, int kill_grace_ms, size_t stdout_cap,
			 PQShellStopFunc should_stop, void *arg,
			 PQShellResult *result)
{
	RunState	st;
	struct sigaction old_chld;
	bool		chld_changed = false;

	memset(&st, 0, sizeof(st));
	st.out_alloc = stdout_cap < OUT_INITIAL ? stdout_cap + 1 : OUT_INITIAL + 1;
	if (!result_init(result, st.out_alloc))
		return;
	if (argv == NULL || argv[0] == NULL)
	{
		snprintf(result->start_error, sizeof(result->start_error),
				 "empty command");
		return;
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

	if (pq_shell_spawn(argv, extra_env, &current_pgid, &st.child,
					   result->start_error, sizeof(result->start_error)))
	{
		st.stdin_data = stdin_data;
		st.stdin_len = stdin_len;
		st.timeout_ms = timeout_ms;
		st.kill_grace_ms = kill_grace_ms;
		st.stdout_cap = stdout_cap;
		st.should_stop = should_stop;
		st.arg = arg;
		if (stdin_data == NULL || stdin_len == 0)
			pq_shell_close_fd(&st.child.in_fd);
		st.start = now_ms();
		st.next_stop_check = st.start;

		for (;;)
		{
			int			wait_ms = POLL_MAX_MS;
			int64_t		now = now_ms();

			check_exited(&st, now);
			if (st.exited)
			{
				if (!linger_step(&st, now, &wait_ms))
					break;
			}
			else
				kill_step(&st, result, now, &wait_ms);
			if (!pump(&st, result, wait_ms))
				break;
		}
		reap(&st, result);
	}

	if (chld_changed)
		sigaction(SIGCHLD, &old_chld, NULL);
}
