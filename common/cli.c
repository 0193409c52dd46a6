#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "log.h"

int
parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
env_true(const char *v)
{
	return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "yes") == 0;
}

static void
apply_env(const struct cli_option *o)
{
	char name[128];
	const char *v;
	size_t i, n;

	n = (size_t)snprintf(name, sizeof(name), "PIPEWARDEN_%s", o->name);
	for (i = 11; i < n && i < sizeof(name); i++)
		name[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	if ((v = getenv(name)) == NULL)
		return;
	if (o->value != NULL)
		*o->value = v;
	else if (o->set != NULL)
		*o->set = env_true(v);
}

int
cli_parse(const struct cli_option *opts, int argc, char **argv, char *err, size_t errlen)
{
	const struct cli_option *o;
	const char *arg, *eq;
	size_t namelen;
	int i;

	for (o = opts; o->name != NULL; o++)
		apply_env(o);
	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
			return -1;
		}
		arg += 2;
		eq = strchr(arg, '=');
		namelen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		for (o = opts; o->name != NULL; o++)
			if (strlen(o->name) == namelen && strncmp(o->name, arg, namelen) == 0)
				break;
		if (o->name == NULL) {
			snprintf(err, errlen, "unknown flag '--%.*s' (see --help)",
			    (int)namelen, arg);
			return -1;
		}
		if (o->set != NULL) {
			if (eq != NULL) {
				snprintf(err, errlen, "flag '--%s' takes no value", o->name);
				return -1;
			}
			*o->set = 1;
			continue;
		}
		if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			snprintf(err, errlen, "flag '--%s' needs a value", o->name);
			return -1;
		}
	}
	return 0;
}

void
cli_usage(const char *program, const char *summary, const struct cli_option *opts)
{
	const struct cli_option *o;
	char left[64];

	printf("usage: %s [flags]\n\n%s\n\nflags (each also as env PIPEWARDEN_<FLAG>):\n",
	    program, summary);
	for (o = opts; o->name != NULL; o++) {
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
		    o->arg ? o->arg : "");
		printf("  %-26s %s\n", left, o->help);
	}
}

struct config *
cli_start(const char *program, const char *summary, const char *version,
    const struct cli_option *opts, struct cli_common *c, int argc, char **argv,
    int *status)
{
	struct config *cfg;
	char err[512];

	*status = 2;
	if (cli_parse(opts, argc, argv, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", program, err);
		return NULL;
	}
	if (c->help || c->version) {
		if (c->help)
			cli_usage(program, summary, opts);
		else
			printf("%s %s\n", program, version);
		*status = 0;
		return NULL;
	}
	if ((cfg = config_load(c->config_path, err, sizeof(err))) == NULL ||
	    (c->check_more != NULL && c->check_more(cfg, err, sizeof(err)) == -1)) {
		config_free(cfg);
		cfg = NULL;
		if (c->check)
			fprintf(stderr, "%s\n", err);
		else
			log_error("cannot start: invalid config", "file", c->config_path,
			    "error", err, NULL);
		return NULL;
	}
	if (c->check) {
		printf("configuration OK\n");
		config_free(cfg);
		*status = 0;
		return NULL;
	}
	return cfg;
}
