.PHONY: run build test vet fmt

BIN := bin/ferryd

build:
	go build -o $(BIN) ./cmd/ferryd

run: build
	./$(BIN) $(ARGS)

test:
	scripts/test.sh -race ./...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
