#ifndef PW_CLI_H
#define PW_CLI_H

#include <stddef.h>

struct config;

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

/* The flags every program has, and cli_start() that handles them. */
struct cli_common {
	const char	*config_path;
	int		 check;
	int		 version;
	int		 help;
	/* What this program needs of a valid config besides (NULL: nothing):
	 * return 0, or -1 with a message; the config is then refused as an
	 * invalid one is. */
	int		(*check_more)(const struct config *cfg, char *err, size_t errlen);
};

#define CLI_COMMON_OPTIONS(c) \
	{ "config", &(c)->config_path, NULL, "FILE", "config file (/etc/pipewarden/config.json)" }, \
	{ "check-config", NULL, &(c)->check, NULL, "validate the config file and exit" }, \
	{ "version", NULL, &(c)->version, NULL, "print the version and exit" }, \
	{ "help", NULL, &(c)->help, NULL, "print this help and exit" }

/*
 * The start both programs share: parse the flags (environment first),
 * answer --help and --version, load and validate the config and answer
 * --check-config.  Return the config to run with (the caller owns it), or
 * NULL with the exit status in *status: 0 after --help, --version or a good
 * --check-config, 2 for bad usage or a bad config (the message names it).
 */
struct config	*cli_start(const char *program, const char *summary,
		    const char *version, const struct cli_option *opts,
		    struct cli_common *c, int argc, char **argv, int *status);

/* Parse a whole decimal number in [min, max].  Return 0 or -1. */
int	parse_ll(const char *s, long long min, long long max, long long *out);

#endif
