#ifndef PW_BUF_H
#define PW_BUF_H

#include <stdarg.h>
#include <stddef.h>

/*
 * A growable byte buffer with a cap fixed at creation (curl's dynbuf).
 * Appending past the cap, or an allocation failure, makes the buffer
 * "failed": later appends do nothing and buf_failed() says so, so a caller
 * can build a whole text and check once at the end.  The data is always
 * NUL-terminated while the buffer is not failed.
 */
struct buf {
	char	*data;		/* owned; NULL until the first append */
	size_t	 len;
	size_t	 cap;		/* allocated bytes */
	size_t	 max;		/* the most len may reach */
	int	 failed;	/* 1 after an append was refused */
	int	 toobig;	/* 1 when the refusal was the cap, not memory */
	size_t	 step;		/* 0: grow by doubling; else, past step bytes,
				 * grow to the next multiple of step (memory
				 * held stays within step of what is used) */
};

/* Start an empty buffer that may hold at most max bytes.  Allocates nothing. */
void	buf_init(struct buf *b, size_t max);

/* Free the contents; the buffer may be used again after buf_init(). */
void	buf_release(struct buf *b);

/* Forget the contents but keep the memory and the cap. */
void	buf_reset(struct buf *b);

/* Make room for n more bytes without adding any.  Return 0 or -1 (the
 * buffer is then failed when n passes the cap). */
int	buf_reserve(struct buf *b, size_t n);

/* Append bytes, a string or a formatted string.  Return 0, or -1 when the
 * buffer is (now) failed. */
int	buf_add(struct buf *b, const void *p, size_t n);
int	buf_adds(struct buf *b, const char *s);
int	buf_addc(struct buf *b, char c);
int	buf_addf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vaddf(struct buf *b, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));

/* Append s as a JSON string literal, quotes included. */
int	buf_add_json_string(struct buf *b, const char *s);

/* Append s as one RFC 6901 JSON-pointer segment ('~' -> "~0", '/' -> "~1"). */
int	buf_add_pointer_segment(struct buf *b, const char *s);

/* Take the data out of the buffer: the caller owns the returned string
 * and the buffer is left empty.  When the buffer is failed, its contents
 * are freed and NULL is returned. */
char	*buf_detach(struct buf *b, size_t *lenp);

#endif
