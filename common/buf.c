#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->failed = 0;
	b->toobig = 0;
	b->step = 0;
}

void
buf_release(struct buf *b)
{
	free(b->data);
	buf_init(b, b->max);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->failed = 0;
	b->toobig = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Make room for n more bytes and the terminating NUL. */
static int
buf_grow(struct buf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (b->failed)
		return -1;
	if (n > b->max - b->len) {
		b->failed = 1;
		b->toobig = 1;
		return -1;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need && (b->step == 0 || ncap * 2 <= b->step))
		ncap *= 2;
	if (ncap < need)
		ncap = (need + b->step - 1) / b->step * b->step;
	if ((p = realloc(b->data, ncap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
buf_reserve(struct buf *b, size_t n)
{
	return buf_grow(b, n);
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_grow(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_addc(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int
buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || buf_grow(b, (size_t)n) == -1) {
		b->failed = 1;
		return -1;
	}
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int
buf_add_json_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	const unsigned char *run;

	buf_addc(b, '"');
	run = (const unsigned char *)s;
	for (p = run; *p != '\0'; p++) {
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		buf_add(b, run, (size_t)(p - run));
		run = p + 1;
		switch (*p) {
		case '"':	buf_add(b, "\\\"", 2); break;
		case '\\':	buf_add(b, "\\\\", 2); break;
		case '\n':	buf_add(b, "\\n", 2); break;
		case '\r':	buf_add(b, "\\r", 2); break;
		case '\t':	buf_add(b, "\\t", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
			buf_add(b, u, sizeof(u));
		}
		}
	}
	buf_add(b, run, (size_t)(p - run));
	return buf_addc(b, '"');
}

int
buf_add_pointer_segment(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '~')
			buf_add(b, "~0", 2);
		else if (*s == '/')
			buf_add(b, "~1", 2);
		else
			buf_addc(b, *s);
	}
	return b->failed ? -1 : 0;
}

char *
buf_detach(struct buf *b, size_t *lenp)
{
	char *p;

	if (b->failed) {
		/* Nothing usable to hand over: free what there is, so that
		 * "return buf_detach(&b, ...)" never leaks. */
		buf_release(b);
		return NULL;
	}
	if (b->data == NULL) {
		if (buf_grow(b, 0) == -1)
			return NULL;
		b->data[0] = '\0';
	}
	p = b->data;
	if (lenp != NULL)
		*lenp = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
