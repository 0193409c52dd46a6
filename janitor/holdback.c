#include <stdlib.h>
#include <string.h>

#include "../common/array.h"
#include "holdback.h"

static struct holdback_entry *
find(const struct holdback *h, const char *key)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->items[i].key, key) == 0)
			return &h->items[i];
	return NULL;
}

int
holdback_held(const struct holdback *h, const char *key, unsigned long cycle)
{
	const struct holdback_entry *e = find(h, key);

	return e != NULL && cycle < e->until;
}

unsigned long
holdback_refused(struct holdback *h, const char *key, unsigned long cycle,
    unsigned long max_skip)
{
	struct holdback_entry *e = find(h, key);
	char *copy;

	if (max_skip < 1)
		max_skip = 1;
	if (e == NULL) {
		if ((copy = strdup(key)) == NULL ||
		    array_grow(&h->items, &h->cap, h->n, sizeof(*h->items), 8) == -1) {
			free(copy);
			return 0;
		}
		e = &h->items[h->n++];
		e->key = copy;
		e->skip = 1;
	} else {
		e->skip = e->skip > max_skip / 2 ? max_skip : e->skip * 2;
	}
	e->until = cycle + e->skip + 1;
	return e->skip;
}

static void
drop(struct holdback *h, size_t i)
{
	free(h->items[i].key);
	h->items[i] = h->items[--h->n];
}

void
holdback_clear(struct holdback *h, const char *key)
{
	struct holdback_entry *e = find(h, key);

	if (e != NULL)
		drop(h, (size_t)(e - h->items));
}

void
holdback_prune(struct holdback *h, unsigned long cycle, unsigned long max_skip)
{
	size_t i = 0;

	while (i < h->n) {
		if (cycle > h->items[i].until + max_skip)
			drop(h, i);
		else
			i++;
	}
}

void
holdback_release(struct holdback *h)
{
	while (h->n > 0)
		drop(h, h->n - 1);
	free(h->items);
	memset(h, 0, sizeof(*h));
}
