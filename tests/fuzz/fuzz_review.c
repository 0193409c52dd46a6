/*
 * AdmissionReview -> policy decision.  Invariants: no crash; an answer is
 * always made; a patch is a JSON array of add ops, each of which applies as
 * kube-apiserver's json-patch applies it (the parent exists; an array index
 * is "-" or within bounds); and the patched pod, sent again, gets no patch.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "../../common/config.h"
#include "../../webhook/policy.h"
#include "../../webhook/review.h"
#include "fuzz.h"

/* Resolve a JSON pointer's parent in doc and the last segment. */
static cJSON *
parent_of(cJSON *doc, const char *path, char *last, size_t lastlen)
{
	char seg[4096];
	const char *p = path, *q;
	size_t n, i, o;
	cJSON *cur = doc;

	if (*p != '/')
		return NULL;
	for (;;) {
		p++;
		q = strchr(p, '/');
		n = q != NULL ? (size_t)(q - p) : strlen(p);
		for (i = 0, o = 0; i < n && o + 1 < sizeof(seg); i++) {
			if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
				seg[o++] = p[i + 1] == '0' ? '~' : '/';
				i++;
			} else {
				seg[o++] = p[i];
			}
		}
		seg[o] = '\0';
		if (q == NULL) {
			snprintf(last, lastlen, "%s", seg);
			return cur;
		}
		if (cJSON_IsObject(cur))
			cur = cJSON_GetObjectItemCaseSensitive(cur, seg);
		else if (cJSON_IsArray(cur))
			cur = cJSON_GetArrayItem(cur, (int)strtol(seg, NULL, 10));
		else
			return NULL;
		if (cur == NULL)
			return NULL;
		p = q;
	}
}

/* Apply add ops exactly as evanphx json-patch v4 does; abort if one fails. */
static void
apply(cJSON *pod, const char *patch, size_t len)
{
	cJSON *ops = cJSON_ParseWithLength(patch, len), *op, *parent, *v;
	char last[4096];

	FUZZ_ASSERT(cJSON_IsArray(ops) && cJSON_GetArraySize(ops) > 0);
	cJSON_ArrayForEach(op, ops) {
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(op, "op");
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(op, "path");
		v = cJSON_GetObjectItemCaseSensitive(op, "value");
		FUZZ_ASSERT(cJSON_IsString(kind) && strcmp(kind->valuestring, "add") == 0);
		FUZZ_ASSERT(cJSON_IsString(path) && v != NULL);
		parent = parent_of(pod, path->valuestring, last, sizeof(last));
		FUZZ_ASSERT(parent != NULL);	/* "doc is missing path" in kube-apiserver */
		v = cJSON_Duplicate(v, 1);
		if (cJSON_IsObject(parent)) {
			if (cJSON_GetObjectItemCaseSensitive(parent, last) != NULL)
				cJSON_ReplaceItemInObjectCaseSensitive(parent, last, v);
			else
				cJSON_AddItemToObject(parent, last, v);
		} else {
			FUZZ_ASSERT(cJSON_IsArray(parent));
			FUZZ_ASSERT(strcmp(last, "-") == 0 || (int)strtol(last, NULL, 10) <= cJSON_GetArraySize(parent));
			cJSON_AddItemToArray(parent, v);
		}
	}
	cJSON_Delete(ops);
}

static int
decide(const char *body, size_t len, struct review *rv, struct policy_decision *d)
{
	struct policy_input in;
	char err[256];

	memset(d, 0, sizeof(*d));
	if (review_parse(body, len, rv, err, sizeof(err)) == -1)
		return -1;
	in.operation = rv->operation;
	in.kind = rv->kind;
	in.group = rv->group;
	in.pod = rv->object;
	in.version = "0.1.0";
	FUZZ_ASSERT(policy_decide(fuzz_config(), &in, d) == 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_decision d, d2;
	struct review rv, rv2;
	char *answer, *again;
	size_t len;

	if (decide((const char *)data, size, &rv, &d) == -1)
		return 0;
	answer = review_answer(rv.uid, &d, &len);
	FUZZ_ASSERT(answer != NULL);
	free(answer);
	if (d.result == POLICY_PATCHED) {
		cJSON *root = cJSON_Duplicate(rv.root, 1);
		cJSON *pod = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(root, "request"), "object");
		apply(pod, d.patch, d.patch_len);
		again = cJSON_PrintUnformatted(root);
		FUZZ_ASSERT(again != NULL);
		if (decide(again, strlen(again), &rv2, &d2) == 0) {
			FUZZ_ASSERT(d2.result != POLICY_PATCHED);	/* idempotent */
			policy_decision_release(&d2);
			review_release(&rv2);
		}
		cJSON_free(again);
		cJSON_Delete(root);
	}
	policy_decision_release(&d);
	review_release(&rv);
	return 0;
}
