# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow lint demo bench clean data image-tokenizers

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
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(PY) examples/demo.py

# Training data for the shipped tokenizers (not needed by `make test`): Debian's photo packages, then
# data/photos/{train,heldout} by mmgist.datasets.gather_photos. plasma-workspace-wallpapers is
# reserved for independent evaluation: never install it here.
PHOTO_PACKAGES := ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-20.04 gnome-backgrounds mate-backgrounds sway-backgrounds
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

data: $(STAMP)
	dpkg -s $(PHOTO_PACKAGES) >/dev/null 2>&1 || { $(APT) update -q && $(APT) install -y -q --no-install-recommends $(PHOTO_PACKAGES); }
	$(PY) -c "from mmgist.datasets import gather_photos; c = gather_photos('data/photos'); print(len(c.manifest), 'images in', c.train.parent)"

# The recipe of the shipped image tokenizers: v1's weights trained further on the photo collections, and the
# plain-VQ baseline from the same start, data and steps (in parallel, one thread each; ~40 min on 2 cores).
IMAGE_TRAIN := $(PY) -m mmgist.cli train-tokenizer image --data data/photos/train --preset f8 --steps 700 --lr 3e-4 \
	--augment colour --init image-vq-f8

image-tokenizers: data
	OMP_NUM_THREADS=1 $(IMAGE_TRAIN) --quantizer vq --out tokenizers/image-vq-f8-v2 & \
	OMP_NUM_THREADS=1 $(IMAGE_TRAIN) --quantizer plain-vq --out tokenizers/image-vq-f8-plain & wait
	$(PY) benchmarks/image_tokenizer.py --side-by-side tokenizers/image-vq-f8-v2/heldout.png \
		--update-card tokenizers/image-vq-f8-v2/README.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
