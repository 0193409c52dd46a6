# pipewarden: build, test, demo, bench.  `make help` lists the targets.

VERSION   := 0.1.0
CC        ?= cc
PYTHON    := /usr/bin/python3
WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wpointer-arith
CFLAGS    ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DPIPEWARDEN_VERSION='"$(VERSION)"' \
             $(WARNINGS) $(CFLAGS) $(EXTRA_CFLAGS)
LIBS       = -lmicrohttpd -lgnutls -lcjson -lm -lpthread
JLIBS      = -lmicrohttpd -lcurl -lcjson -lm -lpthread

# Debian packages: to build, and to run the tests and benchmarks.
BUILD_DEPS := gcc make pkg-config libmicrohttpd-dev libgnutls28-dev \
              libcjson-dev libcurl4-openssl-dev libssl-dev
TEST_DEPS  := python3 python3-jsonpatch python3-yaml openssl curl valgrind prometheus \
              procps nghttp2-client util-linux $(IMAGE_DEPS)
# Debian packages that make the container image (no Docker engine needed).
IMAGE_DEPS := umoci skopeo binutils ca-certificates
# Debian packages of the real node (make e2e-node): the container runtime,
# the CNI plugins, and what the suite uses to build its images.
NODE_DEPS  := containerd runc containernetworking-plugins iptables iproute2 libc6-dev $(IMAGE_DEPS)

COMMON_SRC  := common/array.c common/buf.c common/cli.c common/config.c common/file.c \
               common/log.c common/metrics.c common/names.c common/quantity.c \
               common/timefmt.c common/jsonscan.c common/strpool.c
PLAN_SRC    := janitor/holdback.c janitor/kube_parse.c janitor/plan.c janitor/timing.c janitor/ado.c janitor/lease.c janitor/report.c
POLICY_SRC  := webhook/budget.c webhook/conns.c webhook/decision.c webhook/patch.c webhook/resources.c webhook/policy.c webhook/review.c
WEBHOOK_SRC := $(COMMON_SRC) $(POLICY_SRC) webhook/arena.c webhook/certs.c \
               webhook/server.c webhook/main.c
JANITOR_SRC := $(COMMON_SRC) $(PLAN_SRC) common/http.c common/secret.c janitor/signals.c \
               janitor/setup.c janitor/leader.c janitor/act.c janitor/jobs.c janitor/retire.c janitor/health.c \
               janitor/kube.c janitor/loop.c janitor/waiting.c janitor/reportcmd.c janitor/main.c
UNIT_TESTS  := test_buf test_file test_quantity test_names test_config test_metrics test_kube_parse \
               test_budget test_policy test_plan test_timing test_allocfail

# B is the build directory: build/ normally, build/asan/ with sanitizers.
B := build
ifeq ($(SANITIZE),1)
B := build/asan
ALL_CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=address,undefined
endif

.PHONY: image all deps test unit fuzz-replay fuzz fuzz-deps e2e e2e-cluster e2e-node keda controlplane manifests check-asan valgrind demo bench bench-admission soak clean help

all: deps $(B)/bin/pipewarden-webhook $(B)/bin/pipewarden-janitor $(B)/tools/policy-run
ifneq ($(SANITIZE),1)
all: bin/pipewarden-webhook bin/pipewarden-janitor
bin/%: $(B)/bin/%
	@mkdir -p bin && cp $< $@
endif

help:
	@echo "make            build bin/pipewarden-webhook and bin/pipewarden-janitor"
	@echo "make test       unit, policy, end-to-end, janitor scenarios (SCENARIOS=4000,"
	@echo "                SCENARIOS_ASAN=400), ASan+UBSan and valgrind runs"
	@echo "make demo       show the webhook and the janitor at work"
	@echo "make image      the container image (OCI layout and docker-archive in build/image)"
	@echo "make manifests  render and check the kustomize install path"
	@echo "make controlplane  build the pinned Kubernetes and Helm (cached in ~/.cache/pipewarden)"
	@echo "make e2e-cluster   pipewarden on a real control plane (etcd, kube-apiserver, controllers)"
	@echo "make e2e-node   the agent lifecycle on a real node (kubelet, containerd) with the real KEDA"
	@echo "make check-asan the tests with AddressSanitizer and UBSan"
	@echo "make valgrind   the tests under valgrind (leaks are errors)"
	@echo "make bench      performance figures (bench/results.md)"
	@echo "make bench-admission  what a pod creation pays for pipewarden, against peers"
	@echo "make soak       a million requests; RSS must not grow"
	@echo "make fuzz       libFuzzer on every parser and pure core (FUZZ_SECONDS=60 each)"
	@echo "make clean      remove build output"

# Install what is missing (fresh Debian 12, as root).
deps: build/.deps
build/.deps:
ifneq ($(NODEPS),1)
	@sh tests/support/ensure-packages $(BUILD_DEPS) $(TEST_DEPS)
endif
	@mkdir -p build && touch $@

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(B)/bin/pipewarden-webhook: $(WEBHOOK_SRC:%.c=$(B)/obj/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/bin/pipewarden-janitor: $(JANITOR_SRC:%.c=$(B)/obj/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(JLIBS)

$(B)/tools/policy-run: $(COMMON_SRC:%.c=$(B)/obj/%.o) $(POLICY_SRC:%.c=$(B)/obj/%.o) \
    $(B)/obj/tests/support/policy_run.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(COMMON_SRC:%.c=$(B)/obj/%.o) \
    $(POLICY_SRC:%.c=$(B)/obj/%.o) $(PLAN_SRC:%.c=$(B)/obj/%.o) \
    $(B)/obj/common/http.o $(B)/obj/common/secret.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcurl

# The allocation-failure run wraps our allocations (cJSON's through hooks).
$(B)/tests/test_allocfail: $(B)/obj/tests/unit/test_allocfail.o $(COMMON_SRC:%.c=$(B)/obj/%.o) \
    $(POLICY_SRC:%.c=$(B)/obj/%.o) $(PLAN_SRC:%.c=$(B)/obj/%.o) \
    $(B)/obj/common/http.o $(B)/obj/common/secret.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=strdup \
	    -o $@ $^ $(LIBS) -lcurl

unit-bin: $(UNIT_TESTS:%=$(B)/tests/%)

# ---- fuzzing ---------------------------------------------------------------
# Each harness in tests/fuzz/ is built twice: with a replay main (make test
# feeds it the committed corpus and every past crash) and with clang's
# libFuzzer (make fuzz).  Seeds from ../shared/fixtures are added when there.

FUZZERS    := review config quantity ado kube plan
FUZZ_SRC   := $(COMMON_SRC) $(POLICY_SRC) $(PLAN_SRC) common/http.c common/secret.c \
              janitor/kube.c tests/fuzz/common.c
FUZZ_SECONDS ?= 60
SHARED     := ../shared/fixtures
fuzz_seeds_review := $(SHARED)/kubernetes
fuzz_seeds_ado    := $(SHARED)/azure-devops
fuzz_seeds_kube   := $(SHARED)/kubernetes

$(B)/fuzz-replay/%: $(B)/obj/tests/fuzz/fuzz_%.o $(B)/obj/tests/fuzz/replay.o \
    $(FUZZ_SRC:%.c=$(B)/obj/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcurl

fuzz-replay: all $(FUZZERS:%=$(B)/fuzz-replay/%)
	@for f in $(FUZZERS); do \
	    seeds=""; case $$f in review|kube) seeds=$(SHARED)/kubernetes;; ado) seeds=$(SHARED)/azure-devops;; esac; \
	    [ -n "$$seeds" ] && [ ! -d "$$seeds" ] && { echo "skipped: ../shared not found (fuzz seeds for $$f)"; seeds=""; }; \
	    $(B)/fuzz-replay/$$f tests/fuzz/corpus/$$f tests/fuzz/regressions/$$f $$seeds 2>build/fuzz-replay.err \
	        > build/fuzz-replay.out || { tail -3 build/fuzz-replay.err; echo "fuzz replay $$f $(SUITE_TAG): FAILED" >> build/results; exit 1; }; \
	    echo "fuzz replay $$f $(SUITE_TAG): $$(tail -n 1 build/fuzz-replay.out)" | tee -a build/results; done

build/fuzz/%: tests/fuzz/fuzz_%.c $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -o $@ $^ $(LIBS) -lcurl

fuzz-deps:
	@sh tests/support/ensure-packages clang libclang-rt-14-dev

build/fuzz/%: | fuzz-deps

fuzz: fuzz-deps $(FUZZERS:%=build/fuzz/%)
	@for f in $(FUZZERS); do mkdir -p build/fuzz-corpus/$$f; \
	    seeds=""; case $$f in review|kube) seeds=$(SHARED)/kubernetes;; ado) seeds=$(SHARED)/azure-devops;; esac; \
	    [ -d "$$seeds" ] || seeds=""; \
	    echo "== fuzz $$f ($(FUZZ_SECONDS) s)"; \
	    build/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=tests/fuzz/regressions/$$f/ build/fuzz-corpus/$$f \
	        tests/fuzz/corpus/$$f $$seeds 2>&1 | grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE|cov:|ERROR|SUMMARY" | tail -4 || exit 1; done

# ---- the container image ------------------------------------------------------
# build/image/oci (OCI layout) and build/image/pipewarden-$(VERSION).docker.tar,
# from this system's Debian packages (image/rootfs.sh, image/build.sh).

image: all
	@sh tests/support/ensure-packages $(IMAGE_DEPS)
	@sh image/rootfs.sh bin build/image/rootfs
	@sh image/build.sh build/image/rootfs build/image $(VERSION)

# Keep objects make would see as intermediate.
.SECONDARY:

-include $(shell find build -name '*.d' -type f 2>/dev/null)

# ---- tests ---------------------------------------------------------------
# Each suite prints "N passed, N failed"; tests/support/summary.py adds them up.

test: all controlplane
	@rm -f build/results
	$(MAKE) --no-print-directory unit fuzz-replay e2e e2e-cluster e2e-node manifests SUITE_TAG=
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory valgrind
	@$(PYTHON) tests/support/summary.py build/results

unit: all unit-bin
	@for t in $(UNIT_TESTS); do $(B)/tests/$$t > build/unit.out || \
	    { cat build/unit.out; echo "$$t $(SUITE_TAG): FAILED" >> build/results; exit 1; }; \
	    echo "$$t $(SUITE_TAG): $$(tail -n 1 build/unit.out)" | tee -a build/results; done

# Randomized janitor scenarios (seeded worlds and faults through the
# simulators): 4,000 in the plain build, 400 under the sanitizers (each
# seed is a new world; SCENARIOS=N runs more).
SCENARIOS      ?= 4000
SCENARIOS_ASAN ?= 400

e2e: all
	$(PYTHON) tests/e2e/run_cases.py --policy $(B)/tools/policy-run --results build/results \
	    --suite "policy golden cases $(SUITE_TAG)"
	$(PYTHON) tests/e2e/test_webhook.py --bin $(B)/bin/pipewarden-webhook --results build/results \
	    --suite "webhook end-to-end $(SUITE_TAG)"
	$(PYTHON) tests/e2e/test_janitor.py --bin $(B)/bin/pipewarden-janitor --results build/results \
	    --suite "janitor end-to-end $(SUITE_TAG)"
	$(PYTHON) tests/e2e/test_scenarios.py --bin $(B)/bin/pipewarden-janitor --results build/results \
	    --count $(SCENARIOS) --suite "janitor randomized scenarios $(SUITE_TAG)"
	$(PYTHON) tests/e2e/test_monitoring.py --webhook $(B)/bin/pipewarden-webhook \
	    --janitor $(B)/bin/pipewarden-janitor --results build/results \
	    --suite "dashboard and alerts on Prometheus $(SUITE_TAG)"

# The test control plane and Helm, built once from their Go modules
# (tests/cluster/controlplane/go.mod, helm/go.mod) into ~/.cache/pipewarden.
controlplane:
	@sh tests/cluster/controlplane/build.sh

# pipewarden installed on a real control plane (tests/cluster/test_cluster.py); the
# image and the Helm chart in the plain run only (the image holds bin/).
CLUSTER_IMAGE = $(if $(filter 1,$(SANITIZE)),,--image build/image)
e2e-cluster: all controlplane $(if $(filter 1,$(SANITIZE)),,image)
	$(PYTHON) tests/cluster/test_cluster.py --webhook $(B)/bin/pipewarden-webhook \
	    --janitor $(B)/bin/pipewarden-janitor $(CLUSTER_IMAGE) --results build/results \
	    --suite "real control plane $(SUITE_TAG)"

# The agent lifecycle on real parts (tests/node/test_node.py): a real node
# (kubelet built with the control plane; Debian's containerd, runc, CNI), the
# real KEDA operator (built into the cache by tests/node/keda/build.sh), an
# agent image built here; the chart installed from `make image`.  The plain
# run only.
keda:
	@sh tests/node/keda/build.sh

e2e-node: all controlplane keda image
	@sh tests/support/ensure-packages $(NODE_DEPS)
	$(PYTHON) tests/node/test_node.py --webhook $(B)/bin/pipewarden-webhook \
	    --janitor $(B)/bin/pipewarden-janitor --image build/image --results build/results \
	    --suite "real node $(SUITE_TAG)"

# Render, validate and check the install path (kustomize, RBAC, promtool; the
# Helm chart: lint, the same objects as kustomize, its values schema).
manifests: all controlplane
	$(PYTHON) tests/install/test_manifests.py --webhook $(B)/bin/pipewarden-webhook \
	    --janitor $(B)/bin/pipewarden-janitor --results build/results
	$(PYTHON) tests/install/test_chart.py --helm $$(sh tests/cluster/controlplane/build.sh --print-dir helm)/helm \
	    --janitor $(B)/bin/pipewarden-janitor --results build/results

check-asan:
	$(MAKE) --no-print-directory SANITIZE=1 all unit-bin
	$(MAKE) --no-print-directory SANITIZE=1 SUITE_TAG="[ASan+UBSan]" SCENARIOS=$(SCENARIOS_ASAN) \
	    unit fuzz-replay e2e e2e-cluster

valgrind: all unit-bin
	$(PYTHON) tests/support/valgrind.py --build $(B) --results build/results $(UNIT_TESTS)

demo: all
	@sh tests/demo/demo.sh

bench: all controlplane $(B)/bench/ceiling $(B)/bench/newconn
	@$(PYTHON) tests/bench/bench.py --build $(B)
	@$(PYTHON) tests/bench/bench_cluster.py --webhook $(B)/bin/pipewarden-webhook \
	    --janitor $(B)/bin/pipewarden-janitor
	@$(MAKE) --no-print-directory bench-admission

# What a pod creation pays for a mutating webhook, on one real control plane:
# none, a no-op, the no-op with pipewarden's patch, the workload-identity
# webhook (built into the cache by tests/bench/admission/peer/build.sh), pipewarden.
ADMISSION_CREATES ?= 2000
ADMISSION_ROUNDS ?= 20
bench-admission: all controlplane $(B)/bench/noop
	@sh tests/bench/admission/peer/build.sh
	@$(PYTHON) tests/bench/admission/bench_admission.py --build $(B) \
	    --creates $(ADMISSION_CREATES) --rounds $(ADMISSION_ROUNDS)

# At least a million requests; RSS at the start and the end must agree within 1 MiB.
SOAK_REQUESTS ?= 1000000
soak: all
	@$(PYTHON) tests/bench/bench.py --build $(B) --soak $(SOAK_REQUESTS)

$(B)/bench/ceiling: $(B)/obj/tests/bench/ceiling.o $(B)/obj/common/file.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lmicrohttpd

$(B)/bench/noop: $(B)/obj/tests/bench/admission/noop.o $(B)/obj/common/file.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lmicrohttpd

$(B)/bench/newconn: $(B)/obj/tests/bench/newconn.o $(B)/obj/common/file.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lssl -lcrypto -lpthread

clean:
	rm -rf build bin
