#include <string.h>

#include "jsonscan.h"

#define MAX_DEPTH	1000	/* as cJSON's CJSON_NESTING_LIMIT: what one can parse, the other can frame */

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at '"': return the position after the closing quote, or NULL. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			p++;
			continue;
		}
		if (*p == '"')
			return p + 1;
		if ((unsigned char)*p < 0x20)
			return NULL;
	}
	return NULL;
}

/* Skip one value (framing only: cJSON checks the contents later). */
static const char *
skip_value(const char *p, const char *end)
{
	int depth = 0;

	p = skip_ws(p, end);
	if (p >= end)
		return NULL;
	if (*p != '{' && *p != '[') {
		if (*p == '"')
			return skip_string(p, end);
		while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
		    *p != '\n' && *p != '\r' && *p != '\t')
			p++;
		return p;
	}
	for (; p < end; p++) {
		if (*p == '"') {
			if ((p = skip_string(p, end)) == NULL)
				return NULL;
			p--;
		} else if (*p == '{' || *p == '[') {
			if (++depth > MAX_DEPTH)
				return NULL;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/* Walk "{...}" or "[...]", calling back per member or element. */
static int
walk(const char *text, size_t len, int object, jsonscan_member_fn mfn,
    jsonscan_element_fn efn, void *cls)
{
	const char *p = skip_ws(text, text + len), *end = text + len, *key, *v, *ve;
	size_t keylen;

	if (p >= end || *p != (object ? '{' : '['))
		return -1;
	p = skip_ws(p + 1, end);
	if (p < end && *p == (object ? '}' : ']'))
		return skip_ws(p + 1, end) == end ? 0 : -1;
	for (;;) {
		key = NULL;
		keylen = 0;
		if (object) {
			if (p >= end || *p != '"' || (v = skip_string(p, end)) == NULL)
				return -1;
			key = p + 1;
			keylen = (size_t)(v - p - 2);
			p = skip_ws(v, end);
			if (p >= end || *p != ':')
				return -1;
			p++;
		}
		v = skip_ws(p, end);
		if ((ve = skip_value(v, end)) == NULL || ve == v)
			return -1;
		if (object ? mfn(key, keylen, v, (size_t)(ve - v), cls) :
		    efn(v, (size_t)(ve - v), cls))
			return -1;
		p = skip_ws(ve, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == (object ? '}' : ']'))
			return skip_ws(p + 1, end) == end ? 0 : -1;
		return -1;
	}
}

int
jsonscan_object(const char *text, size_t len, jsonscan_member_fn fn, void *cls)
{
	return walk(text, len, 1, fn, NULL, cls);
}

int
jsonscan_array(const char *text, size_t len, jsonscan_element_fn fn, void *cls)
{
	return walk(text, len, 0, NULL, fn, cls);
}
