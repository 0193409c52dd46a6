#ifndef PW_JSONSCAN_H
#define PW_JSONSCAN_H

#include <stddef.h>

/*
 * Walking the framing of a large JSON document without building a tree of
 * it: the members of the top-level object, and the elements of an array,
 * each handed over as a slice of the text (which cJSON can then parse on
 * its own).  The janitor reads 20,000-agent lists this way in a fraction of
 * the memory of one cJSON tree.
 */

/* Called for each member: the key (raw, without quotes; keys with escapes
 * are passed raw) and the value's text.  Return 0 to go on, -1 to stop. */
typedef int	(*jsonscan_member_fn)(const char *key, size_t keylen,
		    const char *value, size_t len, void *cls);

/* Called for each element of an array.  Return 0 to go on, -1 to stop. */
typedef int	(*jsonscan_element_fn)(const char *value, size_t len, void *cls);

/* Walk a JSON object.  Return 0, or -1 when the text is not one object
 * (bad framing, nesting over 1000, trailing data) or a callback stopped. */
int	jsonscan_object(const char *text, size_t len, jsonscan_member_fn fn, void *cls);

/* Walk a JSON array.  Return 0, or -1 as above. */
int	jsonscan_array(const char *text, size_t len, jsonscan_element_fn fn, void *cls);

#endif
