# The two commands a fresh machine needs: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo retraining-demo test bench lint onnxruntime browser kafka python-peer training

## Installs ONNX Runtime's library from PyPI into vendor-runtime/ (once).
onnxruntime:
	./scripts/setup-onnxruntime.sh

## Installs Debian's Chromium and playwright-core for the admin page's browser test (once).
browser:
	./scripts/setup-browser.sh

## Installs tansu, the Kafka-API broker the Kafka tests start (once; about 8 minutes).
kafka:
	./scripts/setup-kafka.sh

## Installs the Python Kafka scorer's packages (confluent-kafka, onnxruntime, numpy) from
## PyPI into .venv/, for the Kafka benchmark's comparison (once).
python-peer:
	./scripts/setup-python-peer.sh

## Installs what the training scripts need (scikit-learn, skl2onnx, onnx) from PyPI into
## .venv-train/, for the test that retrains a model on a dataset the pipeline wrote (once).
training:
	./scripts/setup-training.sh

## Runs the demo pipeline end to end: listings are checked, scored by the house-price model,
## and written with their prediction and model version; rejects are kept apart with the reason.
demo: onnxruntime
	$(CARGO) build --release --locked
	./target/release/sluice validate pipelines/house-prices.yaml
	./target/release/sluice run pipelines/house-prices.yaml
	@echo
	@wc -l out/scored-listings.jsonl out/rejected-listings.jsonl
	@echo "first scored record:"
	@head -n 1 out/scored-listings.jsonl

## Runs the retraining loop end to end (about 40 s): the market shifts, drift starts a training
## run, the new version shadows the old one and is promoted; ends with a picture of each
## version's MAE over time, out/retraining/retraining.png.
retraining-demo: onnxruntime training
	$(CARGO) build --release --locked
	rm -rf out/retraining
	mkdir -p out/retraining
	cp -r examples/house-prices/models out/retraining/models
	./target/release/sluice run examples/house-prices/retraining.yaml
	@echo
	@grep -h '"event":"published"' out/retraining/runs.jsonl || echo "no version was published"
	@grep -h '"event":"promoted"' out/retraining/model-audit.jsonl || echo "no version was promoted"
	.venv-train/bin/python examples/house-prices/plot.py out/retraining

## Runs every test (unit, verification problems, CLI, end-to-end, scoring with the real ONNX Runtime).
test: onnxruntime browser kafka training
	$(CARGO) test --locked

## Measures the runtime and the scorer against their baselines, side by side.
bench: onnxruntime kafka python-peer
	$(CARGO) bench --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
