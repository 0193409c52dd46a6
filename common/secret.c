#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "secret.h"

int
secret_set(struct secret *s, const char *p, size_t n)
{
	char *b = malloc(n + 1);

	if (b == NULL)
		return -1;
	memcpy(b, p, n);
	b[n] = '\0';
	secret_release(s);
	s->bytes = b;
	s->len = n;
	return 0;
}

int
secret_load(struct secret *s, const char *path)
{
	char *text;
	size_t len;
	int rc;

	if ((text = file_read(path, 64 * 1024, &len)) == NULL)
		return -1;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
	    text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (len == 0) {
		free(text);
		errno = ENODATA;
		return -1;
	}
	rc = secret_set(s, text, len);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

const char *
secret_bytes(const struct secret *s)
{
	return s->bytes != NULL ? s->bytes : "";
}

void
secret_release(struct secret *s)
{
	if (s->bytes != NULL) {
		explicit_bzero(s->bytes, s->len);
		free(s->bytes);
	}
	s->bytes = NULL;
	s->len = 0;
}
