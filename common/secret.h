#ifndef PW_SECRET_H
#define PW_SECRET_H

#include <stddef.h>

/*
 * A secret (a PAT, a bearer token, a federated token).  Its bytes are
 * reachable only through secret_bytes(), which only the HTTP client calls
 * to build an Authorization header or a form body; nothing converts a
 * secret to a string for logging, and the log API takes plain strings, so
 * a secret reaches a log line only if someone calls secret_bytes() there.
 */
struct secret {
	char	*bytes;		/* owned, NUL-terminated, zeroed on free */
	size_t	 len;
};

/* Read a secret from a file (trailing newlines and spaces dropped).
 * Return 0, or -1 with errno set (ENODATA for an empty file). */
int	secret_load(struct secret *s, const char *path);

/* Take a copy of n bytes.  Return 0 or -1. */
int	secret_set(struct secret *s, const char *p, size_t n);

/* The bytes, for the HTTP client only. */
const char	*secret_bytes(const struct secret *s);

/* Zero and free the contents; safe on an empty secret. */
void	secret_release(struct secret *s);

#endif
