#ifndef PW_PATCH_H
#define PW_PATCH_H

#include <stddef.h>

#include "../common/buf.h"

/* The most a patch, or one missing parent collected whole, may take. */
#define PATCH_MAX	(1024 * 1024)

/*
 * kube-apiserver's json-patch never creates a missing parent, so every
 * addition goes through a group: the object or array it lands in.  When
 * the parent exists in the pod, each member is its own "add" op
 * (".../key" or ".../-"); when it does not, the members are collected and
 * the whole parent is added once -- inside its own parent's group, if that
 * is missing too.
 */
struct patch {
	struct buf	 text;		/* the JSON Patch array */
	size_t		 nops;
};

struct patch_group {
	struct patch	*patch;
	struct patch_group *parent;	/* NULL: the parent exists for sure */
	char		 key[128];	/* our name in the parent */
	struct buf	 path;		/* JSON pointer of this object/array */
	struct buf	 whole;		/* members, while the parent is missing */
	int		 exists;	/* present in the pod */
	int		 is_array;
	size_t		 count;
};

/* Append one "add" op (path: an escaped JSON pointer; value: JSON text).
 * After any allocation failure the patch is abandoned whole. */
void	patch_op(struct patch *p, const char *path, const char *value);

/* Open a group at path (already escaped), or at key below parent; exists:
 * the object or array is in the pod. */
void	patch_group_open(struct patch_group *g, struct patch *p, struct patch_group *parent,
	    const char *path_or_key, int exists, int is_array);

/* Add a member (value: JSON text; key NULL in an array). */
void	patch_group_add(struct patch_group *g, const char *key, const char *value);
void	patch_group_add_buf(struct patch_group *g, const char *key, struct buf *v);
void	patch_group_add_string(struct patch_group *g, const char *key, const char *value);

/* Close a group: a missing parent that got members is added whole. */
void	patch_group_close(struct patch_group *g);

#endif
