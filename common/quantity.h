#ifndef PW_QUANTITY_H
#define PW_QUANTITY_H

/*
 * Kubernetes resource quantities (apimachinery's grammar):
 *
 *	quantity ::= [+-] number suffix
 *	number   ::= digits | digits "." [digits] | "." digits
 *	suffix   ::= "" | n u m k M G T P E | Ki Mi Gi Ti Pi Ei | (e|E) [+-] digits
 *
 * A value is held exactly in nano-units (10^-9), the finest precision
 * Kubernetes keeps; a finer fraction is rounded up, as apimachinery does.
 */
struct quantity {
	__int128	nano;
};

/* Parse s into *q.  Return 0, or -1 when s is not a quantity or its value
 * does not fit (more than about 10^29). */
int	quantity_parse(const char *s, struct quantity *q);

/* Compare: <0, 0 or >0 as a is less than, equal to or greater than b. */
int	quantity_cmp(const struct quantity *a, const struct quantity *b);

#endif
