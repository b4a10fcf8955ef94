/*-------------------------------------------------------------------------
 *
 * shell_split.c
 *	  Splitting a shell handler's command line into words, sh-like but
 *	  without any expansion (see shell.h for the rules).
 *
 * libc only, like shell.c: test/shell_runner/test_shell.c builds it
 * standalone too.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"

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
