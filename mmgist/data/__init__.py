"""Training data gathered offline: photographs (`images`), speech, music and effects (`audio`) and clips
(`video`) for the tokenizers, and texts (`texts`: docstrings, READMEs, man pages) for gist compressors, each
with its held-out split, and the random crops, segments and clips that training draws from them."""
