.PHONY: run build test chaos fuzz bench vet fmt check-rules

BIN := bin/ferryd

build:
	go build -o $(BIN) ./cmd/ferryd
	go build -o bin/ferry ./cmd/ferry

run: build
	./$(BIN) $(ARGS)

# -timeout: each package's own limit, above go test's 10-minute default:
# under -race on 2 cores busy with other work, cmd/ferryd and session took
# 15-17 minutes each (they run side by side). The fault sweep and the
# hang-up matrix run without -race, after the rest: they check what every
# injected failure or hang-up leaves behind, hundreds of uploads, and the
# race detector tripled the sweep's CPU and made the matrix 35x slower (11 s
# against 6 minutes, a third of CI) while finding nothing the tests under
# -race do not (the session tests, TestHangupIssue12Reproduction and
# TestShutdownFinishesInFlight run there).
test:
	scripts/test.sh -race -timeout 18m -skip '^(TestFaultSweep|TestHangupInAndAfterLastChunk)$$' ./...
	scripts/test.sh -count=1 -timeout 18m -run '^(TestFaultSweep|TestHangupInAndAfterLastChunk)$$' ./session/ ./cmd/ferryd/

# The long fault-injection suite (docs/chaos.md): the fault sweep over
# every call of an upload in every mode, every hang-up point, and 50
# uploads through ferryd processes killed with -9, Redis restarted, S3
# stopped for 30 s, Sentinel failovers under load with redis.min_replicas_ack
# 1 and 0. make test runs the short version of the same tests.
chaos:
	CI=1 FERRY_CHAOS=long FERRY_FAULTS=long FERRY_SCALE=long scripts/test.sh -count=1 -timeout 40m -v \
		-run '^(TestChaos|TestFaultSweep|TestHangupInAndAfterLastChunk|TestHangupIssue12Reproduction|TestSentinelFailover|TestScaleOutCluster)$$' ./session/ ./cmd/ferryd/

# Every native fuzz target in turn, FUZZTIME each (default 1m), and a table
# of executions and crashes (docs/fuzzing.md). Not in make test: that runs
# only the seed corpora, as ordinary tests.
fuzz:
	scripts/fuzz.sh

# The comparison benchmarks, side by side in one run each, and a summary
# table (docs/performance.md): uploads against direct multipart and tusd,
# one file over capped connections, downloads, creates, memory. About 5
# minutes here (the capped link is 2 of them); raw output in bench.out.
bench:
	scripts/bench.sh

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# promtool check of deploy/prometheus (not part of make test: it downloads a Debian package).
check-rules:
	scripts/check-rules.sh
