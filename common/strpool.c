#include <stdlib.h>
#include <string.h>

#include "strpool.h"

const char *
strpool_add(struct strpool *sp, const char *s)
{
	char **v;

	if (sp->n == sp->cap) {
		sp->cap = sp->cap ? sp->cap * 2 : 256;
		if ((v = realloc(sp->items, sp->cap * sizeof(*v))) == NULL)
			return NULL;
		sp->items = v;
	}
	if ((sp->items[sp->n] = strdup(s)) == NULL)
		return NULL;
	return sp->items[sp->n++];
}

void
strpool_release(struct strpool *sp)
{
	size_t i;

	for (i = 0; i < sp->n; i++)
		free(sp->items[i]);
	free(sp->items);
	memset(sp, 0, sizeof(*sp));
}
