/*
 * Starting and stopping the janitor (signals, clients, metrics), and
 * reloading its config with nothing left pointing into the old one.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

/* The janitor's own identity: config janitor.identity, else what the Azure
 * webhook put on its pod (AZURE_CLIENT_ID ...); never the agents'. */
static int
configure_ado(struct janitor *j, const struct config *cfg)
{
	const struct janitor_options *o = j->opts;
	const char *cid = cfg->janitor.client_id, *tid = cfg->janitor.tenant_id;

	if (cid[0] == '\0')
		cid = o->client_id;
	if (tid[0] == '\0')
		tid = o->tenant_id;
	if (ado_configure(&j->ado, cfg->organization_url, cid, tid,
	    o->authority != NULL && o->authority[0] != '\0' ? o->authority :
	    cfg->authority_host) == -1)
		return -1;
	ado_set_api_version(&j->ado, cfg->janitor.api_version);
	return 0;
}

void
setup_reload(struct janitor *j)
{
	struct config *cfg;
	struct pod_list *seen;
	long long *ids;
	size_t i, k;
	char err[512];

	if (!file_watch_changed(&j->cfg_watch))
		return;
	if ((cfg = config_load(j->opts->config_path, err, sizeof(err))) == NULL ||
	    config_janitor_auth(cfg, j->opts->pat_file != NULL, err, sizeof(err)) == -1) {
		config_free(cfg);
		metrics_add(j->m_reload_errors, 1);
		log_error("config reload failed; the previous config stays in force",
		    "file", j->opts->config_path, "error", err, NULL);
		return;
	}
	ids = calloc(cfg->npools + 1, sizeof(*ids));
	seen = calloc(cfg->npools + 1, sizeof(*seen));
	if (ids == NULL || seen == NULL) {
		free(ids);
		free(seen);
		config_free(cfg);
		return;
	}
	/* The client takes its own copies: nothing keeps pointing into the
	 * config freed below. */
	if (configure_ado(j, cfg) == -1) {
		metrics_add(j->m_reload_errors, 1);
		log_error("config reload failed: out of memory; the previous config stays "
		    "in force", "file", j->opts->config_path, NULL);
		free(ids);
		free(seen);
		config_free(cfg);
		return;
	}
	/* A pool that stays keeps what its pods ran (moved, not copied). */
	for (i = 0; i < cfg->npools; i++)
		for (k = 0; k < j->cfg->npools; k++)
			if (strcmp(cfg->pools[i], j->cfg->pools[k]) == 0 && j->seen[k].n > 0) {
				seen[i] = j->seen[k];
				memset(&j->seen[k], 0, sizeof(j->seen[k]));
			}
	leader_forget(j->seen, j->cfg->npools);
	free(j->seen);
	config_free(j->cfg);
	free(j->pool_ids);
	j->cfg = cfg;
	j->pool_ids = ids;
	j->seen = seen;
	j->elector.duration = 2 * cfg->janitor.interval_seconds + 15;
	__atomic_store_n(&j->health_interval, cfg->janitor.interval_seconds, __ATOMIC_RELAXED);
	log_info("config reloaded", "file", j->opts->config_path, NULL);
}

/* "Why is my job waiting" (leader only): buckets from seconds to hours, as
 * CI jobs take. */
static void
register_waiting_metrics(struct janitor *j)
{
	static const char *const pool[] = { "pool", NULL };
	static const char *const pool_result[] = { "pool", "result", NULL };
	static const char *const pool_phase[] = { "pool", "phase", NULL };
	static const char *const pool_pipeline[] = { "pool", "pipeline", NULL };
	static const char *const namespace[] = { "namespace", NULL };
	static const double wait[] = { 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
		7200, 14400 };
	static const double startup[] = { 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200 };
	static const double duration[] = { 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
		7200, 14400, 28800, 86400 };

	j->m_job_wait = metrics_register("pipewarden_janitor_job_wait_seconds",
	    "How long each job request waited in its pool's queue (queued to assigned).",
	    METRIC_HISTOGRAM, pool, wait, (int)(sizeof(wait) / sizeof(wait[0])));
	j->m_pod_startup = metrics_register("pipewarden_janitor_pod_startup_seconds",
	    "Where an agent pod's start went: scheduling (created to scheduled), starting "
	    "(to the agent container running), registering (to its agent online).",
	    METRIC_HISTOGRAM, pool_phase, startup, (int)(sizeof(startup) / sizeof(startup[0])));
	j->m_job_duration = metrics_register("pipewarden_janitor_job_duration_seconds",
	    "How long each job ran (received by its agent to finished), by result.",
	    METRIC_HISTOGRAM, pool_result, duration,
	    (int)(sizeof(duration) / sizeof(duration[0])));
	j->m_jobs_queued = metrics_register("pipewarden_janitor_jobs_queued",
	    "Job requests of the pool waiting for an agent at the last cycle.", METRIC_GAUGE,
	    pool, NULL, 0);
	j->m_oldest_queued = metrics_register("pipewarden_janitor_oldest_queued_job_seconds",
	    "How long the pool's oldest waiting job request has waited (0: none waits).",
	    METRIC_GAUGE, pool, NULL, 0);
	j->m_pipeline_cpu = metrics_register("pipewarden_janitor_pipeline_cpu_seconds_total",
	    "The agent container's requested CPU (cores) times the seconds it ran the "
	    "pipeline's jobs (usageByPipeline).", METRIC_COUNTER, pool_pipeline, NULL, 0);
	j->m_pipeline_memory = metrics_register(
	    "pipewarden_janitor_pipeline_memory_byte_seconds_total",
	    "The agent container's requested memory (bytes) times the seconds it ran the "
	    "pipeline's jobs (usageByPipeline).", METRIC_COUNTER, pool_pipeline, NULL, 0);
	j->m_jobs_without_pod = metrics_register("pipewarden_janitor_jobs_without_pod",
	    "Agent Jobs (their template opts in) that have had no pod for longer than "
	    "stuckPendingSeconds, by namespace (the Job's Events say why).", METRIC_GAUGE,
	    namespace, NULL, 0);
}

static void
register_metrics(struct janitor *j)
{
	static const char *const pool_reason[] = { "pool", "reason", NULL };
	static const char *const reason[] = { "reason", NULL };
	static const char *const pool_status[] = { "pool", "status", NULL };
	static const char *const code[] = { "code", NULL };
	static const double buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120 };

	j->m_agents_deleted = metrics_register("pipewarden_janitor_agents_deleted_total",
	    "Agents deleted from Azure DevOps.", METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_agents_retired = metrics_register("pipewarden_janitor_agents_retired_total",
	    "Agent pods retired (their registration deleted, the pod removed), by why.",
	    METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_agents_kept = metrics_register("pipewarden_janitor_agents_kept_total",
	    "Offline agents spared, by the rule that spared them.", METRIC_COUNTER,
	    pool_reason, NULL, 0);
	j->m_pods_deleted = metrics_register("pipewarden_janitor_pods_deleted_total",
	    "Pods (or their Jobs) deleted.", METRIC_COUNTER, reason, NULL, 0);
	j->m_agents = metrics_register("pipewarden_janitor_agents",
	    "Agents of each pool at the last cycle, by status.", METRIC_GAUGE,
	    pool_status, NULL, 0);
	j->m_duration = metrics_register("pipewarden_janitor_reconcile_duration_seconds",
	    "Time one cycle took.", METRIC_HISTOGRAM, NULL, buckets,
	    (int)(sizeof(buckets) / sizeof(buckets[0])));
	j->m_ado_requests = metrics_register("pipewarden_janitor_ado_requests_total",
	    "Requests to Azure DevOps and Entra, by HTTP status (error: no answer).",
	    METRIC_COUNTER, code, NULL, 0);
	j->m_is_leader = metrics_register("pipewarden_janitor_is_leader",
	    "1 while this replica holds the Lease and does pool work.", METRIC_GAUGE,
	    NULL, NULL, 0);
	j->m_reload_errors = metrics_register("pipewarden_config_reload_errors_total",
	    "Config reloads that failed; the previous config stayed in force.",
	    METRIC_COUNTER, NULL, NULL, 0);
	j->m_pool_errors = metrics_register("pipewarden_janitor_pool_errors_total",
	    "Cycles in which a pool's work failed (none of its agents deleted), by why.",
	    METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_interruptions = metrics_register("pipewarden_janitor_job_interruptions_total",
	    "Pipeline jobs whose pod ended abnormally while its agent ran them, by reason.",
	    METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_last_cycle = metrics_register("pipewarden_janitor_last_cycle_timestamp_seconds",
	    "When the last cycle finished (Unix time).", METRIC_GAUGE, NULL, NULL, 0);
	register_waiting_metrics(j);
	metrics_set(j->m_is_leader, 0);
	metrics_add(j->m_reload_errors, 0);
}

/* Everything both the loop and the report need: signals, the config, the
 * Kubernetes and Azure DevOps clients.  Takes ownership of cfg.  Return 0,
 * or -1 (logged); setup_close() releases either way. */
int
setup_open(struct janitor *j, const struct janitor_options *opts, struct config *cfg)
{
	sigset_t mask;
	char err[512];

	memset(j, 0, sizeof(*j));
	j->opts = opts;
	/* the janitor now owns cfg */
	j->cfg = cfg;
	cfg = NULL;
	j->sigfd = -1;
	file_watch_init(&j->cfg_watch, opts->config_path);
	register_metrics(j);
	j->elector.identity = opts->identity;
	j->elector.observe = !opts->once;
	j->elector.duration = 2 * j->cfg->janitor.interval_seconds + 15;
	j->health_interval = j->cfg->janitor.interval_seconds;
	j->last_cycle_done = (long long)mono();
	srand((unsigned int)(time(NULL) ^ getpid()));

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((j->sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) == -1 ||
	    (j->pool_ids = calloc(j->cfg->npools + 1, sizeof(*j->pool_ids))) == NULL ||
	    (j->seen = calloc(j->cfg->npools + 1, sizeof(*j->seen))) == NULL) {
		log_error("cannot start", "error", strerror(errno), NULL);
		return -1;
	}
	if (kube_init(&j->kube, opts->kube_api, opts->kube_token_file, opts->kube_ca,
	    opts->namespace, err, sizeof(err)) == -1) {
		log_error("cannot start", "error", err, NULL);
		return -1;
	}
	j->kube.wait = signals_wait;
	j->kube.wait_cls = j;
	if (ado_init(&j->ado, opts->ado_ca) == -1 || configure_ado(j, j->cfg) == -1) {
		log_error("cannot start: out of memory", NULL);
		return -1;
	}
	j->ado.pat_path = opts->pat_file;
	j->ado.token_file = opts->federated_token_file;
	j->ado.wait = signals_wait;
	j->ado.wait_cls = j;
	/* SIGTERM gives up an Azure DevOps call in flight: the Lease is
	 * released well within the pod's grace period. */
	http_client_set_abort(j->ado.http, signals_stopping, j);
	j->ado.m_requests = j->m_ado_requests;
	return 0;
}

void
setup_close(struct janitor *j)
{
	if (j->metrics != NULL)
		MHD_stop_daemon(j->metrics);
	ado_release(&j->ado);
	kube_release(&j->kube);
	if (j->sigfd != -1)
		close(j->sigfd);
	free(j->pool_ids);
	holdback_release(&j->held);
	seen_release(&j->timing_seen);
	if (j->cfg != NULL)
		leader_forget(j->seen, j->cfg->npools);
	free(j->seen);
	config_free(j->cfg);
	metrics_free_all();
}
