#include <stdio.h>
#include <string.h>

#include "timefmt.h"

static int
digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
time_parse(const char *s, time_t *t, long *nanos)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, n = 0;
	long ns = 0;
	const char *p;

	if (s == NULL || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' ||
	    digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' ||
	    digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	p = s + 19;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, n++) {
			if (n >= 9)
				return -1;
			ns = ns * 10 + (*p - '0');
		}
		if (n == 0)
			return -1;
		for (; n < 9; n++)
			ns *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) == 0 &&
	    p[3] == ':' && digits(p + 4, 2, &om) == 0) {
		if (*p == '+') {
			oh = -oh;
			om = -om;
		}
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*t = timegm(&tm) + oh * 3600 + om * 60;
	if (nanos != NULL)
		*nanos = ns;
	return 0;
}

void
time_format_micro(time_t t, long nanos, char out[28])
{
	struct tm tm;
	char buf[96];

	gmtime_r(&t, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (nanos / 1000) % 1000000);
	memcpy(out, buf, 27);	/* the format is 27 characters for years 0-9999 */
	out[27] = '\0';
}
