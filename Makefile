.PHONY: run build test vet fmt check-rules

BIN := bin/ferryd

build:
	go build -o $(BIN) ./cmd/ferryd
	go build -o bin/ferry ./cmd/ferry

run: build
	./$(BIN) $(ARGS)

test:
	scripts/test.sh -race ./...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# promtool check of deploy/prometheus (not part of make test: it downloads a Debian package).
check-rules:
	scripts/check-rules.sh
