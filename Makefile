# Developer entry points. `make demo` and `make test` are all a newcomer needs; see README.md.
#
# Three virtual environments, kept apart because their pins conflict:
#   .venv        the service and its tests (Python 3.11+, pyproject.toml with [dev])
#   .venv-train  training (Python 3.11, torch 2.13.0 CPU build)
#   .venv-sam    AWS SAM CLI, which pins many packages of its own

PYTHON ?= python3
PYTHON_TRAIN ?= python3.11
VENV := .venv
VENV_TRAIN := .venv-train
VENV_SAM := .venv-sam
SAM := $(VENV_SAM)/bin/sam
SAM_CLI_VERSION ?= 1.170.0
# Architecture of the Lambda function and of the dependency layer's wheels: x86_64 or arm64.
ARCH ?= x86_64
# Python 3.13 for the layer smoke test and for precompiling the built artifacts' bytecode
# (layers/Makefile); the Lambda runtime is python3.13.
PYTHON313 ?= $(firstword $(wildcard /root/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))

# The Clothing Co-Parsing dataset (images/, labels/, labels.json); never copied into the repository.
DATASET ?= ../shared/datasets/ccp
TRAIN_OUT ?= runs/local
# Stage 1 trains at 160 px from scratch, stage 2 continues at several input sides, stage 3
# adds the product prior, and stage 4 weighs other garments' pixels 3 times in the loss and
# draws more full sets of 4. model.training.choose_size then picks the side to ship from
# measured IoU and speed. Stages 5 to 9 belong to `make finetune`, described above it.
TRAIN_MINUTES ?= 125
TRAIN_MINUTES_2 ?= 110
TRAIN_MINUTES_3 ?= 95
TRAIN_MINUTES_4 ?= 100
TRAIN_MINUTES_5 ?= 95
TRAIN_MINUTES_6 ?= 100
TRAIN_MINUTES_7 ?= 90
TRAIN_MINUTES_8 ?= 105
TRAIN_MINUTES_9 ?= 100
BLEND_WEIGHT_7 ?= 0.75
TRAIN_SIZES ?= 128,160,192,224,256
TRAIN_SIZES_3 ?= 160,192,224
# `make train` builds model 1.3.0 from scratch; `make finetune` then continues it to MODEL_VERSION.
MODEL_VERSION_BASE ?= 1.3.0
MODEL_VERSION ?= 1.8.0
DEMO_OUT ?= out/demo
SAMPLES := events/samples
DEMO_IMAGES := $(SAMPLES)/packshot.png $(SAMPLES)/front.jpg $(SAMPLES)/back.jpg $(SAMPLES)/detail.jpg

# sam must never reach real AWS from this Makefile: fixed region, placeholder credentials, no telemetry.
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	SAM_CLI_TELEMETRY=0 LAMBDA_ARCH=$(ARCH) PYTHON313=$(PYTHON313)

.PHONY: venv demo test lint bench eval train finetune samples sam-tools build validate package-size \
	layer-smoke readme-images clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

demo: venv
	@echo "Running the Lambda handler in-process on events/direct.json (the sample set, 4 photos)"
	$(VENV)/bin/fashion-seg invoke events/direct.json --out $(DEMO_OUT)
	@$(VENV)/bin/python -c 'import json, sys; \
		doc = json.load(open(sys.argv[1])); \
		print("Model %s %s, category %s" % (doc["model"]["name"], doc["model"]["version"], doc["category"] or "none (no hint)")); \
		print("Product colors:"); \
		print("\n".join("  %s %3d%%  %s (%s)" % (c["hex"], c["percentage"], c["name"], c["family"]) for c in doc["colors"])); \
		print("Masks and cutouts:"); \
		out = sys.argv[1].rsplit("/", 1)[0]; \
		print("\n".join("  %s/%s  %s/%s  coverage %.1f%%  confidence %.2f" % (out, i["mask"]["path"], out, i["cutout"]["path"], 100 * i["coverage"], i["confidence"]) for i in doc["images"]))' \
		$(DEMO_OUT)/result.json
	@echo "All outputs are in $(DEMO_OUT)/"

test: venv
	$(VENV)/bin/python -m pytest -q

lint: venv
	$(VENV)/bin/ruff check handler tests
	$(VENV)/bin/mypy

bench: $(VENV)/.eval-installed
	taskset -c 0 $(VENV)/bin/python tests/bench/bench.py --threads 1
	$(VENV)/bin/python tests/bench/peak_memory.py

$(VENV)/.eval-installed: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,eval]'
	touch $@

eval: $(VENV)/.eval-installed
	$(VENV)/bin/python -m model.training.evaluate --dataset $(DATASET)

$(VENV_TRAIN)/.installed: Makefile
	test -x $(VENV_TRAIN)/bin/python || $(PYTHON_TRAIN) -m venv $(VENV_TRAIN)
	$(VENV_TRAIN)/bin/python -m pip install --quiet --disable-pip-version-check \
		torch==2.13.0 numpy pillow scipy onnx onnxruntime tqdm
	touch $@

train: $(VENV_TRAIN)/.installed
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage1 \
		--minutes $(TRAIN_MINUTES) --width 20 --batch 12
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage2 \
		--init $(TRAIN_OUT)/stage1/last.pt --minutes $(TRAIN_MINUTES_2) --width 20 --batch 12 \
		--sizes $(TRAIN_SIZES) --lr 1.5e-3 --seed 1
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage3 \
		--init $(TRAIN_OUT)/stage2/last.pt --prior --minutes $(TRAIN_MINUTES_3) --width 20 --batch 12 \
		--sizes $(TRAIN_SIZES_3) --size 192 --lr 1e-3 --seed 2
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage4 \
		--init $(TRAIN_OUT)/stage3/last.pt --prior --minutes $(TRAIN_MINUTES_4) --width 20 --batch 12 \
		--sizes $(TRAIN_SIZES_3) --size 192 --lr 1e-3 --seed 3 --other-weight 3 --full-set-rate 0.3
	$(VENV_TRAIN)/bin/python -m model.training.choose_size --dataset $(DATASET) \
		--checkpoint $(TRAIN_OUT)/stage4/last.pt --sizes $(TRAIN_SIZES_3) --out $(TRAIN_OUT)/choose-size
	$(VENV_TRAIN)/bin/python -m model.training.export --dataset $(DATASET) \
		--checkpoint $(TRAIN_OUT)/stage4/last.pt --out model/fashion-seg.fp32.onnx --version $(MODEL_VERSION_BASE) \
		--choice $(TRAIN_OUT)/choose-size/sizes.json
	$(VENV_TRAIN)/bin/python -m model.training.quantize --dataset $(DATASET) \
		--fp32 model/fashion-seg.fp32.onnx --out model/fashion-seg.int8.onnx

# Stages 5 to 7 continue the fp32 file in model/, which is model 1.3.0 right after `make train`.
# They need no checkpoint of stages 1 to 4: model.training.recover rebuilds the weights (batch norms folded,
# kept frozen). Stage 5 adds frames without a product to 10% of the sets and saves a moving
# average of the weights. Stage 6 raises that share to 15% and cuts half of those frames from
# the street photo's background. Stage 7 puts 30% of the studio backgrounds, with or without a
# product, on dark or colored paper, and raises the share of product-free frames to 20%. It
# lost a little on light backdrops, so the model ships a blend: 0.25 x stage 6 + 0.75 x stage 7.
# Stage 8 adds the FinePrior (product map and cross-view matches at 1/8 scale) to the blend and
# trains it at --lr, the rest of the network at 0.3 x --lr. It keeps the side that choose-size-7
# picked for the blend (192 px with the mirrored average). Stage 9 continues stage 8 with the
# same data at 5e-4 for every weight and another seed.
finetune: $(VENV_TRAIN)/.installed
	$(VENV_TRAIN)/bin/python -m model.training.recover --dataset $(DATASET) \
		--onnx model/fashion-seg.fp32.onnx --out $(TRAIN_OUT)/recovered/last.pt
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage5 \
		--init $(TRAIN_OUT)/recovered/last.pt --prior --minutes $(TRAIN_MINUTES_5) --width 20 --batch 12 \
		--sizes $(TRAIN_SIZES_3) --size 192 --lr 5e-4 --seed 4 --other-weight 3 --full-set-rate 0.3 \
		--empty-view-rate 0.1 --ema 0.998
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage6 \
		--init $(TRAIN_OUT)/stage5/last.pt --prior --minutes $(TRAIN_MINUTES_6) --width 20 --batch 12 \
		--sizes $(TRAIN_SIZES_3) --size 192 --lr 4e-4 --seed 5 --other-weight 3 --full-set-rate 0.3 \
		--empty-view-rate 0.15 --busy-empty-rate 0.5 --ema 0.998
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage7 \
		--init $(TRAIN_OUT)/stage6/last.pt --prior --minutes $(TRAIN_MINUTES_7) --width 20 --batch 12 \
		--sizes $(TRAIN_SIZES_3) --size 192 --lr 4e-4 --seed 7 --other-weight 3 --full-set-rate 0.3 \
		--empty-view-rate 0.2 --busy-empty-rate 0.4 --dark-backdrop-rate 0.3 --ema 0.998
	$(VENV_TRAIN)/bin/python -m model.training.average --first $(TRAIN_OUT)/stage6/last.pt \
		--second $(TRAIN_OUT)/stage7/last.pt --weight $(BLEND_WEIGHT_7) --out $(TRAIN_OUT)/stage7-blend/last.pt
	$(VENV_TRAIN)/bin/python -m model.training.choose_size --dataset $(DATASET) \
		--checkpoint $(TRAIN_OUT)/stage7-blend/last.pt --sizes $(TRAIN_SIZES_3) --out $(TRAIN_OUT)/choose-size-7
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage8 \
		--init $(TRAIN_OUT)/stage7-blend/last.pt --prior --fine-prior --minutes $(TRAIN_MINUTES_8) --width 20 \
		--batch 12 --sizes $(TRAIN_SIZES_3) --size 192 --lr 1e-3 --init-lr-scale 0.3 --seed 10 --other-weight 3 \
		--full-set-rate 0.3 --empty-view-rate 0.2 --busy-empty-rate 0.4 --dark-backdrop-rate 0.2 --ema 0.998
	$(VENV_TRAIN)/bin/python -m model.training.train --dataset $(DATASET) --out $(TRAIN_OUT)/stage9 \
		--init $(TRAIN_OUT)/stage8/last.pt --prior --fine-prior --minutes $(TRAIN_MINUTES_9) --width 20 \
		--batch 12 --sizes $(TRAIN_SIZES_3) --size 192 --lr 5e-4 --seed 11 --other-weight 3 \
		--full-set-rate 0.3 --empty-view-rate 0.2 --busy-empty-rate 0.4 --dark-backdrop-rate 0.2 --ema 0.998
	$(VENV_TRAIN)/bin/python -m model.training.export --dataset $(DATASET) \
		--checkpoint $(TRAIN_OUT)/stage9/last.pt --out model/fashion-seg.fp32.onnx --version $(MODEL_VERSION) \
		--size 192 --flip-average
	$(VENV_TRAIN)/bin/python -m model.training.quantize --dataset $(DATASET) \
		--fp32 model/fashion-seg.fp32.onnx --out model/fashion-seg.int8.onnx

samples: venv
	$(VENV)/bin/python tests/data/make_samples.py --out $(SAMPLES)

sam-tools: $(VENV_SAM)/.installed

$(VENV_SAM)/.installed:
	test -x $(VENV_SAM)/bin/python || $(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/python -m pip install --quiet --disable-pip-version-check 'aws-sam-cli==$(SAM_CLI_VERSION)'
	touch $@

build: sam-tools
	$(SAM_ENV) $(SAM) build --parameter-overrides Architecture=$(ARCH)

validate: sam-tools
	$(SAM_ENV) $(SAM) validate --lint

# Unzipped size of the function plus its layers, against the 150 MiB budget (Lambda's own
# limit is 250 MB); then the built artifacts run once under Python 3.13.
package-size: build venv
	$(VENV)/bin/python tests/packaging/package_size.py --build-dir .aws-sam/build
	$(MAKE) layer-smoke

layer-smoke: venv
	@if [ -z "$(PYTHON313)" ] || [ "$(ARCH)" != "$$(uname -m)" ]; then \
		echo "layer-smoke: skipped (needs python3.13 and an $(ARCH) machine)"; \
	else \
		$(VENV)/bin/python tests/packaging/smoke_build.py --build-dir .aws-sam/build --python $(PYTHON313); \
	fi

readme-images: venv
	$(VENV)/bin/python tests/data/make_readme_images.py --out docs/images

clean:
	rm -rf .aws-sam out .pytest_cache .mypy_cache .ruff_cache fashion_seg.egg-info
	find handler tests model -name __pycache__ -type d -prune -exec rm -rf {} +
