#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "strpool.h"

const char *
strpool_add(struct strpool *sp, const char *s)
{
	if (array_grow(&sp->items, &sp->cap, sp->n, sizeof(*sp->items), 256) == -1)
		return NULL;
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
