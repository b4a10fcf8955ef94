/*-------------------------------------------------------------------------
 *
 * shell.h
 *	  Running a shell handler's command: splitting the command line into
 *	  words, and running the program with a timeout, capturing its output.
 *
 * src/shell.c, shell_spawn.c and shell_split.c depend on libc and POSIX
 * only (no PostgreSQL headers): they run inside the background worker, but
 * test/shell_runner/test_shell.c also builds them standalone.  Include this
 * file after postgres.h.
 *
 * The command line is never given to a shell: it is split into words by
 * pq_shell_split (quotes and backslashes as in sh, nothing else), and the
 * words are executed directly.  A job's arguments reach the program only
 * through the environment and its standard input, so shell metacharacters
 * in them are inert.  A handler that wants a shell names one, as in
 * "/bin/sh -c 'echo \"$PROCQ_JOB_ID\"'".
 *
 * Global state: shell.c remembers the process group of the one child that
 * pq_shell_run is running (pq_shell_current_pgid), so that a signal handler
 * can kill it when the server shuts the worker down.  Nothing else.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCQ_SHELL_H
#define PROCQ_SHELL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How many bytes of the end of stderr pq_shell_run keeps. */
#define PQ_SHELL_ERR_TAIL 4096

/*
 * What pq_shell_run tells about a run.  out and err_tail are malloc'd and
 * NUL-terminated (they may contain other NUL bytes too: use the lengths);
 * free them with pq_shell_result_free.  They are empty strings when the
 * program could not be started, and NULL only if the very first allocation
 * failed (then start_error is "out of memory").
 */
typedef struct PQShellResult
{
	int			exit_code;		/* exit status, or -1 if killed by a signal,
								 * not started or unknown */
	int			term_signal;	/* signal that ended it, or 0 */
	bool		timed_out;		/* we killed it because of the timeout */
	bool		aborted;		/* we killed it because should_stop said so */
	bool		stdout_truncated;	/* more than stdout_cap bytes were
									 * written (or memory ran out): the rest
									 * was read and discarded */
	char	   *out;			/* stdout, at most stdout_cap bytes */
	size_t		out_len;
	char	   *err_tail;		/* the last PQ_SHELL_ERR_TAIL bytes of stderr */
	size_t		err_len;
	char		start_error[256];	/* why it could not start, or "" */
} PQShellResult;

/* What a PQShellStopFunc answers. */
typedef enum PQShellStop
{
	PQ_SHELL_GO_ON = 0,			/* let it run */
	PQ_SHELL_STOP,				/* stop it: SIGTERM, SIGKILL after the grace */
	PQ_SHELL_STOP_NOW			/* kill it: SIGKILL at once (shutting down) */
} PQShellStop;

/* Polled while the child runs: whether to stop it, and how. */
typedef PQShellStop (*PQShellStopFunc) (void *arg);

/*
 * Split command into words, sh-like: words are separated by blanks (space,
 * tab, newline, CR, VT, FF); single quotes keep everything up to the next
 * single quote literally; double quotes keep everything up to the next
 * unescaped double quote, where a backslash escapes only " and \ (and is
 * kept before anything else); a backslash outside quotes escapes the next
 * character.  Quoted and unquoted parts next to each other make one word,
 * and '' or "" is an empty word.  No variable expansion, globbing, pipes or
 * redirection.
 *
 * Returns a NULL-terminated array of words in a single malloc'd block:
 * free(argv) frees everything.  On an empty command, an unterminated quote
 * or a trailing backslash, returns NULL with a message in errbuf.  Also
 * NULL ("out of memory") if malloc fails.
 */
extern char **pq_shell_split(const char *command, char *errbuf, size_t errlen);

/*
 * Run argv[0] with arguments argv (NULL-terminated), and wait for it.
 *
 * argv[0] is searched in PATH if it has no '/' (the PATH of the child's
 * environment, so extra_env may set it).  The environment is the current
 * one plus extra_env ("NAME=value" strings, NULL-terminated, may be NULL),
 * which overrides variables of the same name.  stdin_data (stdin_len
 * bytes, may be NULL) is written to the child's stdin, which is then
 * closed.  stdout is captured, at most stdout_cap bytes; the rest is read
 * and discarded.  The last PQ_SHELL_ERR_TAIL bytes of stderr are kept.
 *
 * The child runs in its own process group, with default signal handlers,
 * no blocked signals and no file descriptors but 0, 1 and 2.  After
 * timeout_ms (<= 0: none), or as soon as should_stop(arg) returns
 * PQ_SHELL_STOP (polled at least every 100 ms while the child runs; may be
 * NULL), the whole group gets SIGTERM, and SIGKILL kill_grace_ms later if
 * the child is still alive (kill_grace_ms <= 0: SIGKILL at once).  When
 * should_stop returns PQ_SHELL_STOP_NOW, the group gets SIGKILL at once,
 * also during the grace of an earlier SIGTERM (should_stop is still
 * polled then): for a caller that is shutting down and must not wait.  After the child
 * exits, descendants still holding its stdout or stderr open get SIGKILL
 * (after 100 ms), and when pq_shell_run returns the child has been reaped
 * and every process left in its group has been sent SIGKILL.
 *
 * should_stop must return normally (it must not longjmp out, e.g. by
 * elog(ERROR)): the child and its pipes would be leaked.
 *
 * Everything goes into *result, which the caller frees with
 * pq_shell_result_free.  Nothing is reported otherwise: if the program
 * could not be started (not found, not executable, fork failed...),
 * start_error says why and exit_code is -1.
 */
extern void pq_shell_run(char *const argv[], char *const extra_env[],
						 const char *stdin_data, size_t stdin_len,
						 int timeout_ms, int kill_grace_ms, size_t stdout_cap,
						 PQShellStopFunc should_stop, void *arg,
						 PQShellResult *result);

/* Free what pq_shell_run allocated in *result (not result itself). */
extern void pq_shell_result_free(PQShellResult *result);

/*
 * The process group (= pid) of the child pq_shell_run is running, or 0
 * when none.  Async-signal-safe.
 */
extern pid_t pq_shell_current_pgid(void);

/*
 * Send SIGKILL to the process group of the running child, if any; for a
 * signal handler that must make sure the child dies when the server shuts
 * the worker down.  Async-signal-safe; pq_shell_run then reaps the child
 * as usual (term_signal is SIGKILL).
 */
extern void pq_shell_kill_current(void);

#endif							/* PROCQ_SHELL_H */
