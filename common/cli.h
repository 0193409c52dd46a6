#ifndef PW_CLI_H
#define PW_CLI_H

#include <stddef.h>

/*
 * Command-line flags, each also settable as PIPEWARDEN_<FLAG> in the
 * environment (upper case, '-' as '_'); a flag on the command line wins.
 */
struct cli_option {
	const char	*name;		/* "tls-cert" for --tls-cert */
	const char	**value;	/* flag with a value: where it goes */
	int		*set;		/* switch (no value): set to 1 */
	const char	*arg;		/* the value's name in --help */
	const char	*help;
};

/* Apply the environment, then argv.  Values point into argv or environ.
 * Return 0, or -1 with a message in err (unknown flag, missing value). */
int	cli_parse(const struct cli_option *opts, int argc, char **argv,
	    char *err, size_t errlen);

/* Print "usage" and one line per option to stdout. */
void	cli_usage(const char *program, const char *summary,
	    const struct cli_option *opts);

/* Parse a whole decimal number in [min, max].  Return 0 or -1. */
int	parse_ll(const char *s, long long min, long long max, long long *out);

#endif
