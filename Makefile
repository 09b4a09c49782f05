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
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGPIVOT_WERROR=ON \
	  -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)

# The multi-threaded paths under ThreadSanitizer (workers = 4, cancels across workers,
# failover with the monitor thread, admin fan-out); a report fails the run.
test-tsan: tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -L pg \
	  -R 'pg_fixture|four workers|every worker|transaction mode|promote mode|SHOW|PAUSE|metrics'

# Every test, once normally and once under AddressSanitizer + UndefinedBehaviorSanitizer.
test: build asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

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
	rm -rf $(BUILD) $(ASAN_BUILD)
