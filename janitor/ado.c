#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/timefmt.h"
#include "ado.h"

static const char *
str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The "value" array of a {"count":N,"value":[...]} collection. */
static const cJSON *
collection(const cJSON *root)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "value");

	return cJSON_IsObject(root) && cJSON_IsArray(v) ? v : NULL;
}

static int
parse_agent(const cJSON *a, struct agent_info *ag, char *err, size_t errlen)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
	const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(a, "enabled");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(a, "systemCapabilities");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(a, "assignedRequest");
	const char *status = str(a, "status"), *changed = str(a, "statusChangedOn");
	const char *managed;

	memset(ag, 0, sizeof(*ag));
	if (!cJSON_IsNumber(id) || (ag->name = str(a, "name")) == NULL ||
	    status == NULL || time_parse(str(a, "createdOn"), &ag->created, NULL) == -1) {
		snprintf(err, errlen, "an agent lacks id, name, status or createdOn");
		return -1;
	}
	ag->id = (long long)id->valuedouble;
	ag->online = strcmp(status, "online") == 0;
	/* enabled is omitted when false (EmitDefaultValue=false). */
	ag->enabled = cJSON_IsTrue(enabled);
	ag->busy = req != NULL && !cJSON_IsNull(req);
	if (changed != NULL && time_parse(changed, &ag->status_changed, NULL) == -1) {
		snprintf(err, errlen, "agent %lld: statusChangedOn '%.40s' is not a time",
		    ag->id, changed);
		return -1;
	}
	managed = str(caps, "PIPEWARDEN_MANAGED");
	ag->managed = managed != NULL && strcmp(managed, "true") == 0;
	ag->pod_uid = str(caps, "PIPEWARDEN_POD_UID");
	if (ag->pod_uid != NULL && ag->pod_uid[0] == '\0')
		ag->pod_uid = NULL;
	return 0;
}

int
ado_parse_agents(const char *body, size_t len, struct agent_list *out, char *err,
    size_t errlen)
{
	const cJSON *value, *a;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if ((out->root = cJSON_ParseWithLength(body, len)) == NULL ||
	    (value = collection(out->root)) == NULL) {
		snprintf(err, errlen, "agents list: not the JSON collection asked for");
		goto fail;
	}
	if ((out->agents = calloc((size_t)cJSON_GetArraySize(value) + 1,
	    sizeof(*out->agents))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	cJSON_ArrayForEach(a, value) {
		if (parse_agent(a, &out->agents[n], err, errlen) == -1)
			goto fail;
		n++;
	}
	out->n = n;
	return 0;
fail:
	agent_list_release(out);
	return -1;
}

void
agent_list_release(struct agent_list *l)
{
	cJSON_Delete(l->root);
	free(l->agents);
	memset(l, 0, sizeof(*l));
}

long long
ado_parse_pool_id(const char *body, size_t len, const char *name, char *err,
    size_t errlen)
{
	const cJSON *value, *p, *id;
	long long found = -1;
	int matches = 0;
	cJSON *root;

	if ((root = cJSON_ParseWithLength(body, len)) == NULL ||
	    (value = collection(root)) == NULL) {
		snprintf(err, errlen, "pools list: not the JSON collection asked for");
		cJSON_Delete(root);
		return -1;
	}
	/* Compare names here: the service's poolName filter rules are not
	 * documented (exact, case, prefix). */
	cJSON_ArrayForEach(p, value) {
		const char *n = str(p, "name");
		id = cJSON_GetObjectItemCaseSensitive(p, "id");
		if (n != NULL && strcmp(n, name) == 0 && cJSON_IsNumber(id)) {
			matches++;
			found = (long long)id->valuedouble;
		}
	}
	cJSON_Delete(root);
	if (matches != 1) {
		snprintf(err, errlen, matches == 0 ? "no agent pool named '%s' (check "
		    "'pools' in the config and the identity's access to the pool)" :
		    "more than one agent pool named '%s'", name);
		return -1;
	}
	return found;
}
