# The two commands a fresh machine needs: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test bench lint

## Runs the demo pipeline end to end: listings are checked, valid and rejected ones written apart.
demo:
	$(CARGO) build --release --locked
	./target/release/sluice validate pipelines/listings-check.yaml
	./target/release/sluice run pipelines/listings-check.yaml
	@echo
	@wc -l out/valid-listings.jsonl out/rejected-listings.jsonl
	@echo "first rejected record:"
	@head -n 1 out/rejected-listings.jsonl

## Runs every test (unit, verification problems, CLI, end-to-end).
test:
	$(CARGO) test --locked

## Measures the runtime against hand-written loops doing the same work.
bench:
	$(CARGO) bench --locked --bench pipeline

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
