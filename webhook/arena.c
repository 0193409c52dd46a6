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
static size_t		 budget, spent;
static int		 exhausted;

/* Charge n bytes to the budget; 0 when they fit. */
static int
charge(size_t n)
{
	if (n > budget - spent) {
		exhausted = 1;
		return -1;
	}
	spent += n;
	return 0;
}

#if !defined(__SANITIZE_ADDRESS__)
static void *
arena_malloc(size_t n)
{
	struct block *b;
	size_t need = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	void *p;

	if (charge(need) == -1)
		return NULL;
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
/* Each allocation on its own, with its size in front, so the sanitizer sees
 * it and the budget sees what it frees. */
static void *
arena_malloc(size_t n)
{
	max_align_t *p;

	if (charge(n) == -1 || (p = malloc(sizeof(max_align_t) + n)) == NULL)
		return NULL;
	*(size_t *)p = n;
	return p + 1;
}

static void
arena_nofree(void *p)
{
	max_align_t *h;

	if (p == NULL)
		return;
	h = (max_align_t *)p - 1;
	spent -= *(size_t *)h;
	free(h);
}

void
arena_close(void)
{
	cJSON_InitHooks(NULL);
}
#endif

void
arena_open(size_t limit)
{
	cJSON_Hooks hooks = { arena_malloc, arena_nofree };

	budget = limit;
	spent = 0;
	exhausted = 0;
	cJSON_InitHooks(&hooks);
}

int
arena_exhausted(void)
{
	return exhausted;
}

void
arena_free_all(void)
{
	struct block *b;

	while ((b = head) != NULL) {
		head = b->next;
		free(b);
	}
}
