#include <string.h>

#include "quantity.h"

#define NANO_MAX	((__int128)1 << 100)	/* ~1.3e30: far above any resource */

/* Multiply *v by m unless that passes NANO_MAX. */
static int
mul_checked(__int128 *v, __int128 m)
{
	if (m != 0 && *v > NANO_MAX / m)
		return -1;
	*v *= m;
	return 0;
}

static int
parse_suffix(const char *s, int *exp10, int *exp2)
{
	static const struct { const char *name; int e10, e2; } suffixes[] = {
		{ "", 0, 0 }, { "n", -9, 0 }, { "u", -6, 0 }, { "m", -3, 0 },
		{ "k", 3, 0 }, { "M", 6, 0 }, { "G", 9, 0 }, { "T", 12, 0 },
		{ "P", 15, 0 }, { "E", 18, 0 },
		{ "Ki", 0, 10 }, { "Mi", 0, 20 }, { "Gi", 0, 30 },
		{ "Ti", 0, 40 }, { "Pi", 0, 50 }, { "Ei", 0, 60 },
	};
	size_t i;
	int sign = 1, e = 0, digits = 0;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(s, suffixes[i].name) == 0) {
			*exp10 = suffixes[i].e10;
			*exp2 = suffixes[i].e2;
			return 0;
		}
	}
	if (*s != 'e' && *s != 'E')
		return -1;
	s++;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (e > 1000)
			return -1;
		e = e * 10 + (*s - '0');
	}
	if (digits == 0 || *s != '\0')
		return -1;
	*exp10 = sign * e;
	*exp2 = 0;
	return 0;
}

int
quantity_parse(const char *s, struct quantity *q)
{
	__int128 mant = 0, div = 1;
	int neg = 0, intdigits = 0, fracdigits = 0, exp10, exp2, e;
	int significant = 0;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	for (; *s >= '0' && *s <= '9'; s++, intdigits++) {
		if (mant != 0 || *s != '0')
			significant++;
		if (significant > 30)
			return -1;
		mant = mant * 10 + (*s - '0');
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, fracdigits++) {
			if (mant != 0 || *s != '0')
				significant++;
			if (significant > 30 || fracdigits > 40)
				return -1;
			mant = mant * 10 + (*s - '0');
		}
	}
	if (intdigits + fracdigits == 0)
		return -1;
	if (parse_suffix(s, &exp10, &exp2) == -1)
		return -1;

	/* value = mant * 10^(exp10 + 9 - fracdigits) * 2^exp2, in nano-units */
	for (e = 0; e < exp2; e++)
		if (mul_checked(&mant, 2) == -1)
			return -1;
	e = exp10 + 9 - fracdigits;
	for (; e > 0; e--)
		if (mant != 0 && mul_checked(&mant, 10) == -1)
			return -1;
	for (; e < 0; e++) {
		if (div > NANO_MAX / 10) {
			/* Only a value of zero nano-units is left. */
			div = 0;
			break;
		}
		div *= 10;
	}
	if (div == 0)
		mant = mant != 0;	/* rounds up to one nano-unit */
	else if (div > 1)
		mant = mant / div + (mant % div != 0);
	q->nano = neg ? -mant : mant;
	return 0;
}

int
quantity_cmp(const struct quantity *a, const struct quantity *b)
{
	return (a->nano > b->nano) - (a->nano < b->nano);
}
