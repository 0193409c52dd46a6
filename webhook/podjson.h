#ifndef PW_PODJSON_H
#define PW_PODJSON_H

#include <string.h>

#include <cjson/cJSON.h>

/*
 * Reading a pod's JSON: a member that is absent or null reads as NULL, and
 * a member of the wrong type as absent.
 */

static inline const cJSON *
field(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return v == NULL || cJSON_IsNull(v) ? NULL : v;
}

static inline const cJSON *
field_object(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsObject(v) ? v : NULL;
}

static inline const cJSON *
field_array(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsArray(v) ? v : NULL;
}

static inline const char *
field_string(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The element of arr whose "name" is name, or NULL. */
static inline const cJSON *
find_named(const cJSON *arr, const char *name)
{
	const cJSON *item;
	const char *n;

	cJSON_ArrayForEach(item, arr) {
		n = field_string(item, "name");
		if (n != NULL && strcmp(n, name) == 0)
			return item;
	}
	return NULL;
}

#endif
