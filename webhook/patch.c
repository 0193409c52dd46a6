/*
 * The JSON Patch (RFC 6902) writer: "add" ops that never need a parent
 * kube-apiserver's json-patch would have to create.
 */
#include <stdio.h>
#include <string.h>

#include "patch.h"

void
patch_op(struct patch *p, const char *path, const char *value)
{
	/* After any allocation failure the patch is abandoned whole. */
	if (p->text.failed || path == NULL || value == NULL) {
		p->text.failed = 1;
		return;
	}
	buf_adds(&p->text, p->nops++ ? "," : "[");
	buf_adds(&p->text, "{\"op\":\"add\",\"path\":");
	buf_add_json_string(&p->text, path);
	buf_adds(&p->text, ",\"value\":");
	buf_adds(&p->text, value);
	buf_addc(&p->text, '}');
}

/* Open a group at path (already escaped) or at key below parent. */
void
patch_group_open(struct patch_group *g, struct patch *p, struct patch_group *parent,
    const char *path_or_key, int exists, int is_array)
{
	memset(g, 0, sizeof(*g));
	g->patch = p;
	g->parent = parent;
	g->exists = exists;
	g->is_array = is_array;
	buf_init(&g->path, 4096);
	buf_init(&g->whole, PATCH_MAX);
	if (p->text.failed || (parent != NULL && parent->path.data == NULL)) {
		p->text.failed = 1;
		return;
	}
	if (parent != NULL) {
		snprintf(g->key, sizeof(g->key), "%s", path_or_key);
		buf_adds(&g->path, parent->path.data);
		buf_addc(&g->path, '/');
		buf_add_pointer_segment(&g->path, path_or_key);
	} else {
		buf_adds(&g->path, path_or_key);
	}
	if (g->path.failed)
		p->text.failed = 1;
}

/* Add a member: key (objects) and value, a JSON text. */
void
patch_group_add(struct patch_group *g, const char *key, const char *value)
{
	struct buf path;

	if (g->patch->text.failed || g->path.data == NULL) {
		g->patch->text.failed = 1;
		return;
	}
	if (g->exists) {
		buf_init(&path, 4096);
		buf_adds(&path, g->path.data);
		buf_addc(&path, '/');
		if (g->is_array)
			buf_addc(&path, '-');
		else
			buf_add_pointer_segment(&path, key);
		if (path.failed)
			g->patch->text.failed = 1;
		else
			patch_op(g->patch, path.data, value);
		buf_release(&path);
	} else {
		buf_addc(&g->whole, g->count ? ',' : (g->is_array ? '[' : '{'));
		if (!g->is_array) {
			buf_add_json_string(&g->whole, key);
			buf_addc(&g->whole, ':');
		}
		buf_adds(&g->whole, value);
		if (g->whole.failed)
			g->patch->text.failed = 1;
	}
	g->count++;
}

/* Add the JSON text built in v (or fail the patch if building it failed),
 * and release v. */
void
patch_group_add_buf(struct patch_group *g, const char *key, struct buf *v)
{
	if (v->failed)
		g->patch->text.failed = 1;
	else
		patch_group_add(g, key, v->data);
	buf_release(v);
}

void
patch_group_add_string(struct patch_group *g, const char *key, const char *value)
{
	struct buf v;

	buf_init(&v, PATCH_MAX);
	buf_add_json_string(&v, value);
	patch_group_add_buf(g, key, &v);
}

/* Close a group: a missing parent that got members is added whole. */
void
patch_group_close(struct patch_group *g)
{
	if (!g->exists && g->count > 0) {
		buf_addc(&g->whole, g->is_array ? ']' : '}');
		if (g->whole.failed)
			g->patch->text.failed = 1;
		else if (g->parent != NULL)
			patch_group_add(g->parent, g->key, g->whole.data);
		else
			patch_op(g->patch, g->path.data, g->whole.data);
	}
	buf_release(&g->path);
	buf_release(&g->whole);
}
