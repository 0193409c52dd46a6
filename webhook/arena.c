#include <stddef.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "arena.h"

#define BLOCK	(256 * 1024)

struct block {
	struct block	*next;
	size_t		 cap;
	size_t		 used;
	max_align_t	 data[];
};

/* The one arena of the webhook's event-loop thread (cJSON's hooks take no
 * context, so this state cannot live in a struct passed around). */
static struct block	*head;

#if !defined(__SANITIZE_ADDRESS__)
static void *
arena_malloc(size_t n)
{
	struct block *b;
	size_t need = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	void *p;

	if (head == NULL || head->used + need > head->cap) {
		size_t cap = need > BLOCK ? need : BLOCK;
		if ((b = malloc(sizeof(*b) + cap)) == NULL)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = head;
		head = b;
	}
	p = (char *)head->data + head->used;
	head->used += need;
	return p;
}

static void
arena_nofree(void *p)
{
	(void)p;
}

void
arena_open(void)
{
	cJSON_Hooks hooks = { arena_malloc, arena_nofree };

	cJSON_InitHooks(&hooks);
}

void
arena_close(void)
{
	struct block *b;

	cJSON_InitHooks(NULL);
	/* Keep one block of the usual size for the next request. */
	while (head != NULL && (head->next != NULL || head->cap > BLOCK)) {
		b = head;
		head = head->next;
		free(b);
	}
	if (head != NULL)
		head->used = 0;
}
#else
void arena_open(void) {}
void arena_close(void) {}
#endif

void
arena_free_all(void)
{
	struct block *b;

	while ((b = head) != NULL) {
		head = b->next;
		free(b);
	}
}
