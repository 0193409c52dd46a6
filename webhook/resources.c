#include <stdio.h>
#include <string.h>

#include "../common/names.h"
#include "../common/quantity.h"
#include "decision.h"
#include "podjson.h"
#include "resources.h"

/*
 * Resources.  For each resource the profile names, the final request and
 * limit are the container's own where set, else the profile's; a request
 * taken from the profile is capped at the limit, and a limit taken from
 * the profile is raised to the container's own request, so filling in never
 * makes a request exceed its limit.  For a resource Kubernetes does not
 * overcommit (names_resource_exact) the two must be equal, so a filled
 * limit is the container's own request and no request is filled under the
 * container's own limit.  A resource the pod sets at pod level
 * (spec.resources) is left alone: the pod's budget governs it.
 */
struct rvalue {
	const char	*name;
	const char	*json;		/* own: raw JSON of the pod's value */
	char		*ownjson;	/* owned copy when json came from the pod */
	struct quantity	 q;
	int		 set;
	int		 filled;	/* taken from the profile (or capped) */
};

static int
own_quantity(const cJSON *list, const char *name, struct rvalue *v,
    const char *container, const char *which, struct policy_decision *d)
{
	const cJSON *item = field(list, name);
	char number[64];
	const char *text = "";

	if (item == NULL)
		return 0;
	/* The whole value is judged, never a shortened copy of it. */
	if (cJSON_IsString(item))
		text = item->valuestring;
	else if (cJSON_IsNumber(item)) {
		snprintf(number, sizeof(number), "%.17g", item->valuedouble);
		text = number;
	}
	if (quantity_parse(text, &v->q) == -1)
		return decision_deny(d, 400, "container \"%s\" resources.%s.%s: '%.64s%s' is not "
		    "a quantity", container, which, name, text,
		    strlen(text) > 64 ? "..." : "") == -1 ? -1 : 1;
	if ((v->ownjson = cJSON_PrintUnformatted(item)) == NULL)
		return -1;
	v->json = v->ownjson;
	v->set = 1;
	return 0;
}

/* Add the values that were filled in to resources.requests or .limits. */
static void
emit_filled(struct patch_group *resources, const char *which, int exists,
    const char *const *names, const struct rvalue *v, size_t n,
    const struct resource_list *profile)
{
	struct patch_group g;
	size_t i;

	patch_group_open(&g, resources->patch, resources, which, exists, 0);
	for (i = 0; i < n; i++) {
		if (!v[i].filled)
			continue;
		if (v[i].json != NULL)
			patch_group_add(&g, names[i], v[i].json);
		else
			patch_group_add_string(&g, names[i], config_resource(profile, names[i])->text);
	}
	patch_group_close(&g);
}

/* Add the profile's resources to the agent container's resources group.
 * pod_res is the pod's spec.resources (pod-level), or NULL. */
int
resources_fill(const struct profile *pr, const cJSON *container, const char *cname,
    const cJSON *pod_res, struct patch_group *resources, struct policy_decision *d)
{
	const cJSON *res = field_object(container, "resources");
	const cJSON *own_req = field_object(res, "requests");
	const cJSON *own_lim = field_object(res, "limits");
	const struct resource_list *lists[3] = { &pr->requests, &pr->limits, &pr->max };
	struct rvalue req[RESOURCES_MAX], lim[RESOURCES_MAX];
	const char *names[RESOURCES_MAX];
	int exact[RESOURCES_MAX];
	size_t n = 0, i, j, k;
	int rc = -1, r;

	memset(req, 0, sizeof(req));
	memset(lim, 0, sizeof(lim));	/* 16 x 2 entries */
	/* Every resource name the profile mentions, once. */
	for (k = 0; k < 3; k++)
		for (i = 0; i < lists[k]->n && n < RESOURCES_MAX; i++) {
			for (j = 0; j < n; j++)
				if (strcmp(names[j], lists[k]->items[i].name) == 0)
					break;
			if (j == n) {
				exact[n] = names_resource_exact(lists[k]->items[i].name);
				names[n++] = lists[k]->items[i].name;
			}
		}
	for (i = 0; i < n; i++) {
		const struct resource *pl = config_resource(&pr->limits, names[i]);
		const struct resource *pq = config_resource(&pr->requests, names[i]);

		req[i].name = lim[i].name = names[i];
		if ((r = own_quantity(own_req, names[i], &req[i], cname, "requests", d)) != 0 ||
		    (r = own_quantity(own_lim, names[i], &lim[i], cname, "limits", d)) != 0) {
			rc = r == 1 ? 0 : -1;
			goto out;
		}
		/* A resource the pod budgets at pod level is the pod's. */
		if (field(field_object(pod_res, "requests"), names[i]) != NULL ||
		    field(field_object(pod_res, "limits"), names[i]) != NULL)
			continue;
		if (!lim[i].set && pl != NULL) {
			lim[i].set = lim[i].filled = 1;
			lim[i].q = pl->q;
			lim[i].json = NULL;
			if (req[i].set && (exact[i] || quantity_cmp(&req[i].q, &pl->q) > 0)) {
				lim[i].q = req[i].q;
				lim[i].json = req[i].json;
			}
		}
		/* Under a container's own limit of an exact resource, the API
		 * server makes the request equal to it. */
		if (!req[i].set && pq != NULL && !(exact[i] && lim[i].set && !lim[i].filled)) {
			req[i].set = req[i].filled = 1;
			req[i].q = pq->q;
			req[i].json = NULL;
			if (lim[i].set && quantity_cmp(&pq->q, &lim[i].q) > 0) {
				req[i].q = lim[i].q;
				req[i].json = lim[i].json;
			}
		}
	}
	/* The maximum applies to the container's own values and to ours. */
	for (i = 0; i < pr->max.n; i++) {
		const struct resource *mx = &pr->max.items[i];
		for (j = 0; j < n; j++) {
			if (strcmp(names[j], mx->name) != 0)
				continue;
			if (req[j].set && quantity_cmp(&req[j].q, &mx->q) > 0)
				decision_deny(d, 403, "container \"%s\" resources.requests.%s exceeds "
				    "the maximum %s of profile '%s'; lower it or choose "
				    "another profile with annotation 'pipewarden.io/profile'",
				    cname, mx->name, mx->text, pr->name);
			else if (lim[j].set && quantity_cmp(&lim[j].q, &mx->q) > 0)
				decision_deny(d, 403, "container \"%s\" resources.limits.%s exceeds "
				    "the maximum %s of profile '%s'; lower it or choose "
				    "another profile with annotation 'pipewarden.io/profile'",
				    cname, mx->name, mx->text, pr->name);
			if (d->result == POLICY_DENIED) {
				rc = d->message != NULL ? 0 : -1;
				goto out;
			}
		}
	}
	emit_filled(resources, "requests", own_req != NULL, names, req, n, &pr->requests);
	emit_filled(resources, "limits", own_lim != NULL, names, lim, n, &pr->limits);
	rc = 0;
out:
	for (i = 0; i < n; i++) {
		cJSON_free(req[i].ownjson);
		cJSON_free(lim[i].ownjson);
	}
	return rc;
}
