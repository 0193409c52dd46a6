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

/* Every resource name the profile mentions, once (at most RESOURCES_MAX),
 * and whether Kubernetes overcommits it.  Return how many. */
static size_t
profile_names(const struct profile *pr, const char **names, int *exact)
{
	const struct resource_list *lists[3] = { &pr->requests, &pr->limits, &pr->max };
	size_t n = 0, i, j, k;

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
	return n;
}

/* One resource's final limit and request: the container's own where set,
 * else the profile's (pl, pq), the request never above the limit, and for
 * an exact resource the two equal. */
static void
fill_one(struct rvalue *req, struct rvalue *lim, const struct resource *pq,
    const struct resource *pl, int exact)
{
	if (!lim->set && pl != NULL) {
		lim->set = lim->filled = 1;
		lim->q = pl->q;
		lim->json = NULL;
		if (req->set && (exact || quantity_cmp(&req->q, &pl->q) > 0)) {
			lim->q = req->q;
			lim->json = req->json;
		}
	}
	/* Under a container's own limit of an exact resource, the API server
	 * makes the request equal to it. */
	if (!req->set && pq != NULL && !(exact && lim->set && !lim->filled)) {
		req->set = req->filled = 1;
		req->q = pq->q;
		req->json = NULL;
		if (lim->set && quantity_cmp(&pq->q, &lim->q) > 0) {
			req->q = lim->q;
			req->json = lim->json;
		}
	}
}

/* Deny (d) the first request or limit above the profile's max.  The
 * maximum applies to the container's own values and to ours. */
static void
check_max(const struct profile *pr, const char *cname, const char *const *names,
    const struct rvalue *req, const struct rvalue *lim, size_t n, struct policy_decision *d)
{
	size_t i, j;

	for (i = 0; i < pr->max.n && d->result != POLICY_DENIED; i++) {
		const struct resource *mx = &pr->max.items[i];
		for (j = 0; j < n && d->result != POLICY_DENIED; j++) {
			if (strcmp(names[j], mx->name) != 0)
				continue;
			if ((req[j].set && quantity_cmp(&req[j].q, &mx->q) > 0) ||
			    (lim[j].set && quantity_cmp(&lim[j].q, &mx->q) > 0))
				decision_deny(d, 403, "container \"%s\" resources.%s.%s exceeds "
				    "the maximum %s of profile '%s'; lower it or choose "
				    "another profile with annotation 'pipewarden.io/profile'",
				    cname, req[j].set && quantity_cmp(&req[j].q, &mx->q) > 0 ?
				    "requests" : "limits", mx->name, mx->text, pr->name);
		}
	}
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
	struct rvalue req[RESOURCES_MAX], lim[RESOURCES_MAX];
	const char *names[RESOURCES_MAX];
	int exact[RESOURCES_MAX];
	size_t n, i;
	int rc = -1, r;

	memset(req, 0, sizeof(req));
	memset(lim, 0, sizeof(lim));	/* 16 x 2 entries */
	n = profile_names(pr, names, exact);
	for (i = 0; i < n; i++) {
		req[i].name = lim[i].name = names[i];
		if ((r = own_quantity(own_req, names[i], &req[i], cname, "requests", d)) != 0 ||
		    (r = own_quantity(own_lim, names[i], &lim[i], cname, "limits", d)) != 0) {
			rc = r == 1 ? 0 : -1;
			goto out;
		}
		/* A resource the pod budgets at pod level is the pod's. */
		if (field(field_object(pod_res, "requests"), names[i]) == NULL &&
		    field(field_object(pod_res, "limits"), names[i]) == NULL)
			fill_one(&req[i], &lim[i], config_resource(&pr->requests, names[i]),
			    config_resource(&pr->limits, names[i]), exact[i]);
	}
	check_max(pr, cname, names, req, lim, n, d);
	if (d->result == POLICY_DENIED) {
		rc = d->message != NULL ? 0 : -1;
		goto out;
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
