#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

static enum log_level	min_level = LOG_INFO;
static const char	*program_name = "pipewarden";

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	min_level = level;
}

void
log_init(const char *program)
{
	const char *env;
	size_t i;

	program_name = program;
	if ((env = getenv("PIPEWARDEN_LOG_LEVEL")) == NULL)
		return;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(env, level_names[i]) == 0)
			min_level = (enum log_level)i;
}

void
log_msg(enum log_level level, const char *msg, ...)
{
	char stamp[40];
	struct timespec ts;
	struct tm tm;
	struct buf b;
	const char *key, *val;
	va_list ap;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	buf_init(&b, 64 * 1024);
	buf_addf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"program\":",
	    stamp, ts.tv_nsec / 1000000, level_names[level]);
	buf_add_json_string(&b, program_name);
	buf_adds(&b, ",\"msg\":");
	buf_add_json_string(&b, msg);
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		buf_addc(&b, ',');
		buf_add_json_string(&b, key);
		buf_addc(&b, ':');
		buf_add_json_string(&b, val != NULL ? val : "");
	}
	va_end(ap);
	buf_adds(&b, "}\n");
	if (!b.failed) {
		/* One write per line, so lines of concurrent writers never mix. */
		ssize_t off = 0, n;
		while (off < (ssize_t)b.len &&
		    (n = write(STDERR_FILENO, b.data + off, b.len - (size_t)off)) > 0)
			off += n;
	}
	buf_release(&b);
}
