/*-------------------------------------------------------------------------
 *
 * test_shell.c
 *	  Standalone tests of src/shell*.c (splitting and running a shell
 *	  handler's command), printing TAP.
 *
 * Build and run from the repository root (test/t/002_shell_runner.pl does):
 *
 *	gcc -Wall -Wextra -Werror -o /tmp/test_shell \
 *		test/shell_runner/test_shell.c src/shell*.c
 *	/tmp/test_shell
 *
 * Exits 0 if every test passed, 1 otherwise.  Needs /bin/sh, coreutils
 * (sleep, head, seq, printenv, cat, ls, cut), grep and /proc; takes a few
 * seconds.
 *
 * Global state: the TAP counters below.
 *
 *-------------------------------------------------------------------------
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../src/shell.h"

#define MiB (1024 * 1024)

/* TAP: number of the last test, and how many failed. */
static int	tests_run = 0;
static int	tests_failed = 0;

/* What a should_stop callback does and records. */
typedef struct StopState
{
	int			calls;			/* how often it was called */
	int64_t		start_ms;		/* when the run started */
	int64_t		last_ms;		/* when it was last called */
	int64_t		max_gap_ms;		/* longest time between two calls */
	int			stop_after_ms;	/* stop from then on; < 0: never */
	bool		stop_now;		/* ... with PQ_SHELL_STOP_NOW, not PQ_SHELL_STOP */
	bool		kill_current;	/* call pq_shell_kill_current instead */
	pid_t		seen_pgid;		/* pq_shell_current_pgid() during the run */
} StopState;

/*
 * Report one test result as a TAP line; the description is printf-like.
 */
static bool
ok(bool cond, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static bool
ok(bool cond, const char *fmt,...)
{
	va_list		ap;

	tests_run++;
	if (!cond)
		tests_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tests_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/*
 * Milliseconds on the monotonic clock.
 */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Print a result as TAP comments, to diagnose a failed test.
 */
static void
diag_result(const PQShellResult *r)
{
	printf("#   exit_code=%d term_signal=%d timed_out=%d aborted=%d"
		   " truncated=%d out_len=%zu err_len=%zu\n",
		   r->exit_code, r->term_signal, r->timed_out, r->aborted,
		   r->stdout_truncated, r->out_len, r->err_len);
	printf("#   start_error=[%s]\n", r->start_error);
	if (r->out != NULL && r->out_len < 200)
		printf("#   out=[%s]\n", r->out);
	if (r->err_tail != NULL && r->err_len < 200)
		printf("#   err_tail=[%s]\n", r->err_tail);
}

/*
 * Run argv with no timeout worth mentioning and a 1 MiB cap: the common
 * case of the tests.  Returns the elapsed milliseconds.
 */
static int64_t
run(char *const argv[], char *const env[], const char *in, PQShellResult *r)
{
	int64_t		t0 = now_ms();

	pq_shell_run(argv, env, in, in != NULL ? strlen(in) : 0,
				 10000, 1000, MiB, NULL, NULL, r);
	return now_ms() - t0;
}

/*
 * Is words exactly the NULL-terminated list given as the arguments after
 * it (also NULL-terminated)?
 */
static bool
words_are(char **words,...)
{
	va_list		ap;
	const char *want;
	int			i = 0;
	bool		same = true;

	if (words == NULL)
		return false;
	va_start(ap, words);
	while ((want = va_arg(ap, const char *)) != NULL)
	{
		if (words[i] == NULL || strcmp(words[i], want) != 0)
			same = false;
		if (words[i] != NULL)
			i++;
	}
	va_end(ap);
	if (words[i] != NULL)
		same = false;
	if (!same)
	{
		printf("#   got:");
		for (i = 0; words[i] != NULL; i++)
			printf(" [%s]", words[i]);
		printf("\n");
	}
	return same;
}

/*
 * Has process pid died?  A process that got SIGKILL needs a moment to go,
 * and is then a zombie until its new parent reaps it, so wait up to 2 s
 * for /proc/pid to disappear or show state Z or X.
 */
static bool
process_gone(pid_t pid)
{
	int64_t		deadline = now_ms() + 2000;
	char		path[64];
	char		stat[512];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	for (;;)
	{
		FILE	   *f = fopen(path, "r");
		size_t		n;
		char	   *paren;

		if (f == NULL)
			return true;
		n = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[n] = '\0';
		paren = strrchr(stat, ')');
		if (paren != NULL && (paren[2] == 'Z' || paren[2] == 'X'))
			return true;
		if (now_ms() > deadline)
			return false;
		usleep(20000);
	}
}

/*
 * should_stop callback driven by a StopState: records the calls and the
 * gaps between them, and stops (or kills the child the way a signal
 * handler would) once stop_after_ms have passed.
 */
static PQShellStop
stop_callback(void *arg)
{
	StopState  *st = arg;
	int64_t		now = now_ms();

	if (st->calls > 0 && now - st->last_ms > st->max_gap_ms)
		st->max_gap_ms = now - st->last_ms;
	st->calls++;
	st->last_ms = now;
	st->seen_pgid = pq_shell_current_pgid();
	if (st->stop_after_ms < 0 || now - st->start_ms < st->stop_after_ms)
		return PQ_SHELL_GO_ON;
	if (st->kill_current)
	{
		pq_shell_kill_current();
		return PQ_SHELL_GO_ON;
	}
	return st->stop_now ? PQ_SHELL_STOP_NOW : PQ_SHELL_STOP;
}

/*
 * pq_shell_split: words, quotes, escapes, and its errors.
 */
static void
test_split(void)
{
	char		err[128];
	char	  **w;

	w = pq_shell_split("  echo  hello\tworld \n", err, sizeof(err));
	ok(words_are(w, "echo", "hello", "world", NULL),
	   "split: plain words separated by blanks");
	free(w);

	w = pq_shell_split("a 'b c' \"d e\" f'g h'\"i\"j '' \"\"", err, sizeof(err));
	ok(words_are(w, "a", "b c", "d e", "fg hij", "", "", NULL),
	   "split: single and double quotes, adjacent parts, empty words");
	free(w);

	w = pq_shell_split("'a\\b \"c\"' \"x\\\"y\\\\z\\n\\$\" p\\ q \\'r\\\"",
					   err, sizeof(err));
	ok(words_are(w, "a\\b \"c\"", "x\"y\\z\\n\\$", "p q", "'r\"", NULL),
	   "split: backslashes literal in single quotes, escape only \" and \\ in double quotes, escape anything outside");
	free(w);

	w = pq_shell_split("echo $(touch x) `y` $HOME *.c a|b c>d e;f", err, sizeof(err));
	ok(words_are(w, "echo", "$(touch", "x)", "`y`", "$HOME", "*.c", "a|b",
				 "c>d", "e;f", NULL),
	   "split: no expansion, globbing, pipes, redirection or separators");
	free(w);

	w = pq_shell_split("echo 'abc", err, sizeof(err));
	ok(w == NULL && strstr(err, "single quote") != NULL,
	   "split: unterminated single quote is an error (%s)", err);
	free(w);

	w = pq_shell_split("echo \"abc\\\"", err, sizeof(err));
	ok(w == NULL && strstr(err, "double quote") != NULL,
	   "split: unterminated double quote is an error (%s)", err);
	free(w);

	w = pq_shell_split("echo abc\\", err, sizeof(err));
	ok(w == NULL && strstr(err, "backslash") != NULL,
	   "split: trailing backslash is an error (%s)", err);
	free(w);

	w = pq_shell_split("", err, sizeof(err));
	ok(w == NULL && strcmp(err, "empty command") == 0,
	   "split: empty command is an error (%s)", err);
	free(w);

	w = pq_shell_split(" \t\n ", err, sizeof(err));
	ok(w == NULL && strcmp(err, "empty command") == 0,
	   "split: blank command is an error (%s)", err);
	free(w);
}

/*
 * A successful run: stdout captured, extra environment and stdin delivered,
 * environment overrides.
 */
static void
test_success(void)
{
	char	   *argv[] = {"/bin/sh", "-c",
		"printf '%s|%s|' \"$PROCQ_JOB_ID\" \"$HOME\"; cat", NULL};
	char	   *env[] = {"HOME=/first", "PROCQ_JOB_ID=42", "HOME=/override", NULL};
	char	   *env_argv[] = {"env", NULL};
	char	   *env2[] = {"PROCQ_TEST_VAR=from-job", NULL};
	PQShellResult r;
	char	   *line;
	int			nvar = 0;
	bool		found = false;
	bool		kept = false;

	setenv("PROCQ_TEST_KEEP", "kept", 1);

	run(argv, env, "hello\nstdin", &r);
	if (!ok(r.start_error[0] == '\0' && r.exit_code == 0 && r.term_signal == 0 &&
			!r.timed_out && !r.aborted && !r.stdout_truncated &&
			r.out_len == strlen("42|/override|hello\nstdin") &&
			strcmp(r.out, "42|/override|hello\nstdin") == 0 &&
			r.err_len == 0 && strcmp(r.err_tail, "") == 0,
			"run: stdout captured, env var (last one wins over the environment) and stdin delivered"))
		diag_result(&r);
	pq_shell_result_free(&r);

	/* the overridden variable is replaced, not added a second time */
	setenv("PROCQ_TEST_VAR", "from-parent", 1);
	run(env_argv, env2, NULL, &r);
	for (line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n"))
	{
		if (strncmp(line, "PROCQ_TEST_VAR=", 15) == 0)
			nvar++;
		if (strcmp(line, "PROCQ_TEST_VAR=from-job") == 0)
			found = true;
		if (strcmp(line, "PROCQ_TEST_KEEP=kept") == 0)
			kept = true;
	}
	if (!ok(r.exit_code == 0 && nvar == 1 && found && kept,
			"run: extra_env replaces a variable of the environment, which is otherwise inherited"))
		diag_result(&r);
	pq_shell_result_free(&r);
	unsetenv("PROCQ_TEST_VAR");
	unsetenv("PROCQ_TEST_KEEP");
}

/*
 * Failures: non-zero exit with stderr, death by signal, stderr tail.
 */
static void
test_exit_and_stderr(void)
{
	char	   *fail_argv[] = {"/bin/sh", "-c", "echo partial; echo oops >&2; exit 3", NULL};
	char	   *sig_argv[] = {"/bin/sh", "-c", "kill -USR1 $$", NULL};
	char	   *tail_argv[] = {"/bin/sh", "-c", "seq 1 3000 >&2; echo done", NULL};
	char		expected[20000];
	size_t		len = 0;
	int			i;
	PQShellResult r;

	run(fail_argv, NULL, NULL, &r);
	if (!ok(r.exit_code == 3 && r.term_signal == 0 &&
			strcmp(r.out, "partial\n") == 0 && strcmp(r.err_tail, "oops\n") == 0 &&
			r.err_len == 5,
			"run: non-zero exit code and stderr reported"))
		diag_result(&r);
	pq_shell_result_free(&r);

	run(sig_argv, NULL, NULL, &r);
	if (!ok(r.exit_code == -1 && r.term_signal == SIGUSR1 && !r.timed_out,
			"run: death by a signal reported as exit_code -1 and term_signal"))
		diag_result(&r);
	pq_shell_result_free(&r);

	for (i = 1; i <= 3000; i++)
		len += (size_t) snprintf(expected + len, sizeof(expected) - len, "%d\n", i);
	run(tail_argv, NULL, NULL, &r);
	if (!ok(r.exit_code == 0 && strcmp(r.out, "done\n") == 0 &&
			r.err_len == PQ_SHELL_ERR_TAIL && strlen(r.err_tail) == PQ_SHELL_ERR_TAIL &&
			memcmp(r.err_tail, expected + len - PQ_SHELL_ERR_TAIL,
				   PQ_SHELL_ERR_TAIL) == 0,
			"run: err_tail is exactly the last %d bytes of %zu bytes of stderr",
			PQ_SHELL_ERR_TAIL, len))
		diag_result(&r);
	pq_shell_result_free(&r);
}

/*
 * Programs that cannot be started: start_error says why.
 */
static void
test_start_errors(void)
{
	char		noexec[64];
	char	   *abs_argv[] = {"/no/such/program", NULL};
	char	   *path_argv[] = {"procq-no-such-program", "x", NULL};
	char	   *noexec_argv[] = {noexec, NULL};
	char	   *sh_argv[] = {"sh", "-c", "true", NULL};
	char	   *nopath_env[] = {"PATH=/nonexistent:/also/not", NULL};
	char	   *bad_env[] = {"NOEQUALSIGN", NULL};
	char	   *empty_argv[] = {NULL};
	PQShellResult r;
	int			fd;

	run(abs_argv, NULL, NULL, &r);
	if (!ok(r.exit_code == -1 && r.term_signal == 0 &&
			strcmp(r.start_error,
				   "could not execute \"/no/such/program\": No such file or directory") == 0 &&
			r.out != NULL && r.out_len == 0 && r.err_tail != NULL,
			"start: missing program reported in start_error"))
		diag_result(&r);
	pq_shell_result_free(&r);

	run(path_argv, NULL, NULL, &r);
	if (!ok(r.exit_code == -1 &&
			strcmp(r.start_error,
				   "could not execute \"procq-no-such-program\": No such file or directory") == 0,
			"start: program not found in PATH reported in start_error"))
		diag_result(&r);
	pq_shell_result_free(&r);

	snprintf(noexec, sizeof(noexec), "/tmp/procq_noexec_%d", (int) getpid());
	fd = open(noexec, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
	{
		if (write(fd, "#!/bin/sh\necho ran\n", 19) != 19)
			perror("write");
		close(fd);
	}
	run(noexec_argv, NULL, NULL, &r);
	if (!ok(r.exit_code == -1 && strstr(r.start_error, "Permission denied") != NULL &&
			r.out_len == 0,
			"start: non-executable file reported in start_error (%s)", r.start_error))
		diag_result(&r);
	pq_shell_result_free(&r);
	unlink(noexec);

	run(sh_argv, nopath_env, NULL, &r);
	if (!ok(r.exit_code == -1 && strstr(r.start_error, "No such file") != NULL,
			"start: PATH from extra_env is the one searched"))
		diag_result(&r);
	pq_shell_result_free(&r);

	run(sh_argv, bad_env, NULL, &r);
	if (!ok(r.exit_code == -1 && strstr(r.start_error, "NOEQUALSIGN") != NULL,
			"start: extra_env entry without '=' refused (%s)", r.start_error))
		diag_result(&r);
	pq_shell_result_free(&r);

	run(empty_argv, NULL, NULL, &r);
	ok(r.exit_code == -1 && strcmp(r.start_error, "empty command") == 0,
	   "start: empty argv refused");
	pq_shell_result_free(&r);
}

/*
 * Timeouts: SIGTERM to the group, then SIGKILL after the grace period for
 * a child that ignores SIGTERM.
 */
static void
test_timeout(void)
{
	char	   *sleep_argv[] = {"sleep", "30", NULL};
	char	   *trap_argv[] = {"/bin/sh", "-c", "trap '' TERM; echo trapped; sleep 30", NULL};
	PQShellResult r;
	int64_t		t0;
	int64_t		elapsed;

	t0 = now_ms();
	pq_shell_run(sleep_argv, NULL, NULL, 0, 300, 2000, MiB, NULL, NULL, &r);
	elapsed = now_ms() - t0;
	if (!ok(r.timed_out && !r.aborted && r.exit_code == -1 &&
			r.term_signal == SIGTERM && elapsed >= 290 && elapsed < 2000,
			"timeout: sleep 30 with a 300 ms timeout got SIGTERM after %lld ms",
			(long long) elapsed))
		diag_result(&r);
	pq_shell_result_free(&r);

	t0 = now_ms();
	pq_shell_run(trap_argv, NULL, NULL, 0, 300, 300, MiB, NULL, NULL, &r);
	elapsed = now_ms() - t0;
	if (!ok(r.timed_out && r.exit_code == -1 && r.term_signal == SIGKILL &&
			strcmp(r.out, "trapped\n") == 0 && elapsed >= 590 && elapsed < 3000,
			"timeout: a child ignoring SIGTERM got SIGKILL after the 300 ms grace (%lld ms)",
			(long long) elapsed))
		diag_result(&r);
	pq_shell_result_free(&r);
}

/*
 * Descendants: one holding stdout open does not make us wait, and those
 * left in the group are killed.
 */
static void
test_grandchildren(void)
{
	char	   *hold_argv[] = {"/bin/sh", "-c", "sleep 30 & echo $!", NULL};
	char	   *detached_argv[] = {"/bin/sh", "-c",
		"sleep 30 </dev/null >/dev/null 2>&1 & echo $!", NULL};
	PQShellResult r;
	int64_t		elapsed;
	pid_t		grandchild;

	elapsed = run(hold_argv, NULL, NULL, &r);
	grandchild = (pid_t) atoi(r.out);
	if (!ok(r.exit_code == 0 && !r.timed_out && grandchild > 0 && elapsed < 800,
			"grandchild holding stdout open does not hang us (%lld ms)",
			(long long) elapsed))
		diag_result(&r);
	ok(grandchild > 0 && process_gone(grandchild),
	   "grandchild holding stdout open was killed");
	pq_shell_result_free(&r);

	elapsed = run(detached_argv, NULL, NULL, &r);
	grandchild = (pid_t) atoi(r.out);
	if (!ok(r.exit_code == 0 && grandchild > 0 && elapsed < 2000,
			"grandchild with its own stdout: run returns (%lld ms)",
			(long long) elapsed))
		diag_result(&r);
	ok(grandchild > 0 && process_gone(grandchild),
	   "grandchild left in the process group was killed");
	pq_shell_result_free(&r);
}

/*
 * stdout cap: truncated to exactly the cap, the rest drained so that the
 * child finishes normally; large outputs and inputs neither hang nor take
 * memory beyond the cap.
 */
static void
test_stdout_cap(void)
{
	char	   *head5_argv[] = {"head", "-c", "5000000", "/dev/zero", NULL};
	char	   *head40_argv[] = {"head", "-c", "40000000", "/dev/zero", NULL};
	char	   *printf_argv[] = {"printf", "abc", NULL};
	char	   *cat_argv[] = {"cat", NULL};
	PQShellResult r;
	int64_t		t0;
	int64_t		elapsed;
	size_t		i;
	bool		zeros = true;
	char	   *big;
	size_t		big_len = 3 * MiB + 17;

	run(head5_argv, NULL, NULL, &r);
	for (i = 0; i < r.out_len; i++)
		zeros = zeros && r.out[i] == '\0';
	if (!ok(r.exit_code == 0 && r.stdout_truncated && r.out_len == MiB && zeros,
			"cap: 5000000 bytes of stdout with a 1 MiB cap keep exactly 1 MiB, truncated"))
		diag_result(&r);
	pq_shell_result_free(&r);

	t0 = now_ms();
	pq_shell_run(head40_argv, NULL, NULL, 0, 10000, 1000, 1000, NULL, NULL, &r);
	elapsed = now_ms() - t0;
	if (!ok(r.exit_code == 0 && r.stdout_truncated && r.out_len == 1000 && elapsed < 5000,
			"cap: 40 MB of stdout drained past a 1000-byte cap (%lld ms)",
			(long long) elapsed))
		diag_result(&r);
	pq_shell_result_free(&r);

	pq_shell_run(printf_argv, NULL, NULL, 0, 10000, 1000, 3, NULL, NULL, &r);
	if (!ok(!r.stdout_truncated && r.out_len == 3 && strcmp(r.out, "abc") == 0,
			"cap: output of exactly the cap is not truncated"))
		diag_result(&r);
	pq_shell_result_free(&r);

	pq_shell_run(printf_argv, NULL, NULL, 0, 10000, 1000, 2, NULL, NULL, &r);
	if (!ok(r.stdout_truncated && r.out_len == 2 && strcmp(r.out, "ab") == 0,
			"cap: one byte over the cap is truncated"))
		diag_result(&r);
	pq_shell_result_free(&r);

	/* 3 MiB through cat: we must read while we write, or both block */
	big = malloc(big_len);
	for (i = 0; i < big_len; i++)
		big[i] = (char) ('a' + i % 23);
	pq_shell_run(cat_argv, NULL, big, big_len, 10000, 1000, 4 * MiB, NULL, NULL, &r);
	if (!ok(r.exit_code == 0 && !r.stdout_truncated && r.out_len == big_len &&
			memcmp(r.out, big, big_len) == 0,
			"stdin: 3 MiB piped through cat come back intact"))
		diag_result(&r);
	pq_shell_result_free(&r);
	free(big);
}

/*
 * A child that closes its stdin while we still have data for it: the
 * write fails with EPIPE, and SIGPIPE (default action here: death) must
 * neither kill us nor stay pending.
 */
static void
test_sigpipe(void)
{
	char	   *argv[] = {"/bin/sh", "-c", "exec 0<&-; sleep 0.2; echo fine", NULL};
	size_t		len = 2 * MiB;
	char	   *data = calloc(1, len);
	sigset_t	pending;
	PQShellResult r;

	signal(SIGPIPE, SIG_DFL);
	pq_shell_run(argv, NULL, data, len, 10000, 1000, MiB, NULL, NULL, &r);
	sigemptyset(&pending);
	sigpending(&pending);
	if (!ok(r.exit_code == 0 && strcmp(r.out, "fine\n") == 0 &&
			!sigismember(&pending, SIGPIPE),
			"stdin: child closing stdin early does not kill us with SIGPIPE"))
		diag_result(&r);
	pq_shell_result_free(&r);
	free(data);
}

/*
 * should_stop: polled often enough, aborts the child; pq_shell_kill_current
 * kills it; the child has its own process group.
 */
static void
test_should_stop(void)
{
	char	   *sleep_argv[] = {"sleep", "30", NULL};
	char	   *short_argv[] = {"sleep", "0.6", NULL};
	char	   *pgid_argv[] = {"/bin/sh", "-c",
		"echo $$; cut -d' ' -f5 /proc/$$/stat; sleep 0.15", NULL};
	char	   *trap_argv[] = {"/bin/sh", "-c", "trap '' TERM; echo trapped; sleep 30", NULL};
	StopState	st;
	PQShellResult r;
	int64_t		elapsed;
	long		pid;
	long		pgid;

	memset(&st, 0, sizeof(st));
	st.start_ms = now_ms();
	st.stop_after_ms = 200;
	pq_shell_run(sleep_argv, NULL, NULL, 0, 20000, 2000, MiB, stop_callback, &st, &r);
	elapsed = now_ms() - st.start_ms;
	if (!ok(r.aborted && !r.timed_out && r.exit_code == -1 &&
			r.term_signal == SIGTERM && elapsed >= 190 && elapsed < 2000,
			"should_stop: aborts a sleeping child (%lld ms, %d calls)",
			(long long) elapsed, st.calls))
		diag_result(&r);
	pq_shell_result_free(&r);

	memset(&st, 0, sizeof(st));
	st.start_ms = now_ms();
	st.stop_after_ms = -1;
	pq_shell_run(short_argv, NULL, NULL, 0, 20000, 2000, MiB, stop_callback, &st, &r);
	if (!ok(r.exit_code == 0 && !r.aborted && st.calls >= 5 && st.max_gap_ms <= 200,
			"should_stop: polled every 100 ms (%d calls in 600 ms, longest gap %lld ms)",
			st.calls, (long long) st.max_gap_ms))
		diag_result(&r);
	pq_shell_result_free(&r);

	memset(&st, 0, sizeof(st));
	st.start_ms = now_ms();
	st.stop_after_ms = 100;
	st.kill_current = true;
	pq_shell_run(sleep_argv, NULL, NULL, 0, 20000, 2000, MiB, stop_callback, &st, &r);
	elapsed = now_ms() - st.start_ms;
	if (!ok(!r.aborted && !r.timed_out && r.term_signal == SIGKILL && elapsed < 2000,
			"pq_shell_kill_current: kills the running child (%lld ms)",
			(long long) elapsed))
		diag_result(&r);
	pq_shell_result_free(&r);

	/*
	 * PQ_SHELL_STOP_NOW: a child ignoring SIGTERM gets SIGKILL at once, not
	 * after the 20 s grace; also when it comes during the grace of a
	 * timeout's SIGTERM.
	 */
	memset(&st, 0, sizeof(st));
	st.start_ms = now_ms();
	st.stop_after_ms = 100;
	st.stop_now = true;
	pq_shell_run(trap_argv, NULL, NULL, 0, 60000, 20000, MiB, stop_callback, &st, &r);
	elapsed = now_ms() - st.start_ms;
	if (!ok(r.aborted && !r.timed_out && r.term_signal == SIGKILL && elapsed < 10000,
			"should_stop PQ_SHELL_STOP_NOW: a child ignoring SIGTERM is killed at once (%lld ms, grace 20 s)",
			(long long) elapsed))
		diag_result(&r);
	pq_shell_result_free(&r);

	memset(&st, 0, sizeof(st));
	st.start_ms = now_ms();
	st.stop_after_ms = 600;
	st.stop_now = true;
	pq_shell_run(trap_argv, NULL, NULL, 0, 300, 20000, MiB, stop_callback, &st, &r);
	elapsed = now_ms() - st.start_ms;
	if (!ok(r.timed_out && r.term_signal == SIGKILL && elapsed >= 590 && elapsed < 10000,
			"should_stop PQ_SHELL_STOP_NOW during a timeout's grace: SIGKILL at once (%lld ms, grace 20 s)",
			(long long) elapsed))
		diag_result(&r);
	pq_shell_result_free(&r);

	memset(&st, 0, sizeof(st));
	st.start_ms = now_ms();
	st.stop_after_ms = -1;
	pq_shell_run(pgid_argv, NULL, NULL, 0, 20000, 2000, MiB, stop_callback, &st, &r);
	pid = -1;
	pgid = -2;
	if (sscanf(r.out, "%ld %ld", &pid, &pgid) != 2)
		pid = -1;
	if (!ok(r.exit_code == 0 && pid == pgid && pid == (long) st.seen_pgid &&
			pgid != (long) getpgrp() && pq_shell_current_pgid() == 0,
			"process group: the child leads its own group, pq_shell_current_pgid gives it during the run and 0 after"))
	{
		diag_result(&r);
		printf("#   seen_pgid=%d\n", (int) st.seen_pgid);
	}
	pq_shell_result_free(&r);
}

/*
 * signal_masks_clear says whether the "SigBlk:" and "SigIgn:" lines of a
 * /proc/PID/status show no blocked and no ignored signal.  Signals 32 up
 * to SIGRTMIN - 1 are left out: the C library reserves them, sigaction()
 * cannot change them, and whether they are ignored depends on what
 * started the test.
 */
static bool
signal_masks_clear(const char *status)
{
	unsigned long long blk;
	unsigned long long ign;
	unsigned long long reserved = 0;

	if (sscanf(status, "SigBlk:\t%llx\nSigIgn:\t%llx", &blk, &ign) != 2)
		return false;
	for (int sig = 32; sig < SIGRTMIN; sig++)
		reserved |= 1ULL << (sig - 1);
	return (blk & ~reserved) == 0 && (ign & ~reserved) == 0;
}

/*
 * The child does not inherit our signal dispositions, blocked signals or
 * file descriptors, and our own are as they were after the run.  Also, an
 * ignored SIGCHLD does not lose the exit status.
 */
static void
test_inheritance(void)
{
	char	   *grep_argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
	char	   *ls_argv[] = {"ls", "/proc/self/fd", NULL};
	char	   *exit7_argv[] = {"/bin/sh", "-c", "exit 7", NULL};
	char	   *cat_argv[] = {"/bin/sh", "-c", "cat; echo out; echo err >&2", NULL};
	int			saved[3];
	sigset_t	block;
	sigset_t	oldmask;
	sigset_t	after;
	struct sigaction sa;
	PQShellResult r;
	int			fd;
	char	   *line;
	bool		only_low = true;
	int			nlines = 0;

	/* what a server process might have: ignored and blocked signals */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	run(grep_argv, NULL, NULL, &r);
	sigprocmask(SIG_SETMASK, NULL, &after);
	if (!ok(r.exit_code == 0 && signal_masks_clear(r.out),
			"child: no blocked and no ignored signals although we have some"))
		diag_result(&r);
	ok(sigismember(&after, SIGUSR1) && sigismember(&after, SIGTERM) &&
	   sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN,
	   "parent: signal mask and dispositions unchanged by the run");
	pq_shell_result_free(&r);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);

	/* descriptors without FD_CLOEXEC, as the server has many */
	fd = open("/dev/null", O_RDONLY);
	dup2(fd, 50);
	dup2(fd, 1000);
	run(ls_argv, NULL, NULL, &r);
	for (line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n"))
	{
		nlines++;
		/* ls itself has the directory open as 3 */
		if (atoi(line) > 3)
			only_low = false;
	}
	if (!ok(r.exit_code == 0 && nlines >= 3 && only_low,
			"child: inherits no descriptor above 2 (we have %d, 50 and 1000 open)", fd))
		diag_result(&r);
	pq_shell_result_free(&r);
	close(fd);
	close(50);
	close(1000);

	/*
	 * A server may run with 0, 1 and 2 closed: then the pipes get those
	 * numbers, and must still end up as the child's stdin, stdout and
	 * stderr.
	 */
	fflush(stdout);
	saved[0] = fcntl(0, F_DUPFD_CLOEXEC, 10);
	saved[1] = fcntl(1, F_DUPFD_CLOEXEC, 10);
	saved[2] = fcntl(2, F_DUPFD_CLOEXEC, 10);
	close(0);
	close(1);
	close(2);
	run(cat_argv, NULL, "in|", &r);
	dup2(saved[0], 0);
	dup2(saved[1], 1);
	dup2(saved[2], 2);
	close(saved[0]);
	close(saved[1]);
	close(saved[2]);
	if (!ok(r.exit_code == 0 && strcmp(r.out, "in|out\n") == 0 &&
			strcmp(r.err_tail, "err\n") == 0,
			"child: gets the right stdin, stdout and stderr when we have 0, 1 and 2 closed"))
		diag_result(&r);
	pq_shell_result_free(&r);

	signal(SIGCHLD, SIG_IGN);
	run(exit7_argv, NULL, NULL, &r);
	sigaction(SIGCHLD, NULL, &sa);
	if (!ok(r.exit_code == 7 && sa.sa_handler == SIG_IGN,
			"SIGCHLD ignored: exit status still known, disposition restored"))
		diag_result(&r);
	pq_shell_result_free(&r);
	signal(SIGCHLD, SIG_DFL);
}

/*
 * Shell metacharacters in job arguments are inert: they reach the program
 * through the environment and stdin, or as words of the command, and no
 * shell ever interprets them.
 */
static void
test_metacharacters(void)
{
	char		marker[64];
	char		args[512];
	char		envvar[600];
	char		command[600];
	char		err[128];
	char		expected[600];
	char	   *env[] = {envvar, NULL};
	char	   *printenv_argv[] = {"printenv", "PROCQ_ARGS", NULL};
	char	   *sh_argv[] = {"/bin/sh", "-c", "printf '%s' \"$PROCQ_ARGS\"", NULL};
	char	   *cat_argv[] = {"cat", NULL};
	char	  **words;
	PQShellResult r;

	snprintf(marker, sizeof(marker), "/tmp/procq_pwned_%d", (int) getpid());
	unlink(marker);
	snprintf(args, sizeof(args),
			 "{\"a\": \"$(touch %s); rm -rf x; \\\"quotes\\\" 'single' `touch %s` | touch %s & touch %s\"}",
			 marker, marker, marker, marker);
	snprintf(envvar, sizeof(envvar), "PROCQ_ARGS=%s", args);
	snprintf(expected, sizeof(expected), "%s\n", args);

	run(printenv_argv, env, NULL, &r);
	if (!ok(r.exit_code == 0 && strcmp(r.out, expected) == 0,
			"metacharacters: env var reaches printenv verbatim"))
		diag_result(&r);
	pq_shell_result_free(&r);

	run(sh_argv, env, NULL, &r);
	if (!ok(r.exit_code == 0 && strcmp(r.out, args) == 0,
			"metacharacters: a shell handler expanding \"$PROCQ_ARGS\" prints them verbatim"))
		diag_result(&r);
	pq_shell_result_free(&r);

	run(cat_argv, NULL, args, &r);
	if (!ok(r.exit_code == 0 && strcmp(r.out, args) == 0,
			"metacharacters: stdin reaches cat verbatim"))
		diag_result(&r);
	pq_shell_result_free(&r);

	snprintf(command, sizeof(command),
			 "printf '%%s\\n' $(touch %s) `touch %s` ;touch %s", marker, marker, marker);
	snprintf(expected, sizeof(expected), "$(touch\n%s)\n`touch\n%s`\n;touch\n%s\n",
			 marker, marker, marker);
	words = pq_shell_split(command, err, sizeof(err));
	if (words != NULL)
	{
		run(words, NULL, NULL, &r);
		if (!ok(r.exit_code == 0 && strcmp(r.out, expected) == 0,
				"metacharacters: in the command itself they are plain words"))
			diag_result(&r);
		pq_shell_result_free(&r);
		free(words);
	}
	else
		ok(false, "metacharacters: split failed: %s", err);

	ok(access(marker, F_OK) != 0, "metacharacters: %s was never created", marker);
	unlink(marker);
}

/*
 * Run every test, print the TAP plan, and exit non-zero if any failed.
 */
int
main(void)
{
	int64_t		t0 = now_ms();

	signal(SIGPIPE, SIG_DFL);
	test_split();
	test_success();
	test_exit_and_stderr();
	test_start_errors();
	test_timeout();
	test_grandchildren();
	test_stdout_cap();
	test_sigpipe();
	test_should_stop();
	test_inheritance();
	test_metacharacters();
	printf("1..%d\n", tests_run);
	printf("# %d of %d failed, %lld ms\n", tests_failed, tests_run,
		   (long long) (now_ms() - t0));
	return tests_failed == 0 ? 0 : 1;
}
