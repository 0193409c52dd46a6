#include <stddef.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "arena.h"

#define BLOCK	(256 * 1024)

/*
 * One allocator, whatever the build: the sanitizer round tests the arena
 * that ships.  Under AddressSanitizer the unused part of each block is
 * poisoned, each allocation is unpoisoned as it is handed out, and a
 * poisoned gap follows it, so an overrun or a use after arena_close() is
 * still reported; the budget counts what the shipping build counts.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define REDZONE	16
#else
#define ASAN_POISON_MEMORY_REGION(p, n)		((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n)	((void)(p), (void)(n))
#define REDZONE	0
#endif

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

static void *
arena_malloc(size_t n)
{
	struct block *b;
	size_t need = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	size_t space = need + REDZONE;
	void *p;

	if (charge(need) == -1)
		return NULL;
	if (head == NULL || head->used + space > head->cap) {
		size_t cap = space > BLOCK ? space : BLOCK;
		if ((b = malloc(sizeof(*b) + cap)) == NULL)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = head;
		head = b;
		ASAN_POISON_MEMORY_REGION(b->data, cap);
	}
	p = (char *)head->data + head->used;
	head->used += space;
	ASAN_UNPOISON_MEMORY_REGION(p, n);
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
		ASAN_UNPOISON_MEMORY_REGION(b->data, b->cap);
		free(b);
	}
	if (head != NULL) {
		head->used = 0;
		ASAN_POISON_MEMORY_REGION(head->data, head->cap);
	}
}

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
		ASAN_UNPOISON_MEMORY_REGION(b->data, b->cap);
		free(b);
	}
}
