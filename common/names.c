#include <ctype.h>
#include <string.h>

#include "names.h"

static int
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

void
names_label_value(const char *pool, char out[LABEL_VALUE_MAX + 1])
{
	size_t n = 0, start = 0;

	for (; *pool != '\0' && n < LABEL_VALUE_MAX; pool++) {
		char c = *pool;
		out[n++] = is_alnum(c) || c == '-' || c == '_' || c == '.' ? c : '-';
	}
	while (n > 0 && !is_alnum(out[n - 1]))
		n--;
	while (start < n && !is_alnum(out[start]))
		start++;
	memmove(out, out + start, n - start);
	out[n - start] = '\0';
}

int
names_is_dns_subdomain(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if ((c == '-' || c == '.') && i > 0 && i < n - 1)
			continue;
		return 0;
	}
	return 1;
}

int
names_glob_match(const char *p, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s != '\0') {
		if (*p == '*') {
			star = p++;
			resume = s;
		} else if (*p != '\0' && (*p == '?' ||
		    tolower((unsigned char)*p) == tolower((unsigned char)*s))) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

int
names_is_guid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

int
names_resource_exact(const char *resource)
{
	const char *slash = strchr(resource, '/');
	int native = slash == NULL || strstr(resource, "kubernetes.io/") != NULL;

	return !native || strncmp(resource, "hugepages-", 10) == 0;
}
