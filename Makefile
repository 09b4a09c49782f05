# Thin front door over CMake (as Neovim does). The README's two commands are `make demo`
# and `make test`; both install what is missing first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build asan tsan test-tsan test test-fast demo bench package package-test format clean

all: build

deps:
	@scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGPIVOT_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPGPIVOT_WERROR=ON -DPGPIVOT_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# ThreadSanitizer: the threads are the workers, the health monitor and the supervisor.
# Only what test-tsan runs is built: pgpivot and the pg tests.
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGPIVOT_WERROR=ON \
	  -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target pgpivot pgpivot_pg_tests

# The multi-threaded paths under ThreadSanitizer: workers = 4 under a transaction-mode load
# with cancels crossing workers and the admin console fanning out to every worker, failover
# driven by the monitor thread (tests/pg/threads_pgtest.cpp, the workers and promote-mode
# tests), idle servers and new clients handed between workers, PAUSE, SHOW and the metrics. Every process
# (pgpivot, daemonized or not, and the test binary) writes its reports to
# $(TSAN_BUILD)/tsan-reports: any report there fails the run, whatever the tests said, and
# is printed. A run of zero tests fails too.
# "500 clients over a pool of 10" is left out: one worker (nothing for TSan between
# workers) and 500 SCRAM logins at once, which a TSan build on a busy machine cannot
# always answer within the clients' connect_timeout. The normal and ASan runs have it.
TSAN_TESTS ?= pg_fixture|four workers|every worker|between workers|spread evenly|worker_spill_load|however loaded|transaction mode|promote mode|SHOW|PAUSE|metrics
TSAN_EXCLUDE ?= clients over a pool of 10
TSAN_REPORTS = $(abspath $(TSAN_BUILD))/tsan-reports
test-tsan: tsan
	rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	cd $(TSAN_BUILD) || exit 1; status=0; \
	  TSAN_OPTIONS="log_path=$(TSAN_REPORTS)/report second_deadlock_stack=1 suppressions=$(abspath tests/tsan.supp)" \
	  ctest --output-on-failure --no-tests=error -L pg -R '$(TSAN_TESTS)' -E '$(TSAN_EXCLUDE)' \
	    || status=$$?; \
	  if [ -n "$$(ls -A $(TSAN_REPORTS))" ]; then \
	    cat $(TSAN_REPORTS)/*; \
	    echo "ThreadSanitizer: $$(ls $(TSAN_REPORTS) | wc -l) process(es) reported, in $(TSAN_REPORTS)" >&2; \
	    exit 1; \
	  fi; \
	  exit $$status

# Every test, once normally and once under AddressSanitizer + UndefinedBehaviorSanitizer,
# then the multi-threaded subset under ThreadSanitizer (test-tsan).
test: build asan tsan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-tsan

# Unit tests only: seconds, no PostgreSQL needed.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD)

# Direct vs PgBouncer vs pgpivot, interleaved (bench/README.md): about 22 minutes on a quiet
# machine; knobs such as DURATION, ROUNDS, TESTS, SYSCALLS=1 pass through the environment.
bench: build
	bench/run.sh $(BUILD)

# Failover: scenarios 1, 2 and 5 for the fast and default profiles (bench/failover.sh);
# at most 10 minutes, table in bench/results/failover-*.md.
.PHONY: bench-failover
bench-failover: build
	bench/failover.sh $(BUILD)

# The .deb and .rpm packages (CPack), in $(BUILD)/.
package: build
	cd $(BUILD) && cpack

# Both packages built, linted and compared; the .deb installed into a fresh Debian root
# (debootstrap), run as the pgpivot user against a throwaway PostgreSQL, upgraded, removed
# and purged. packaging/test-packages.sh says more.
package-test: build
	packaging/test-packages.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
