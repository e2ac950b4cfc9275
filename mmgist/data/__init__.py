"""Training data for the tokenizers, gathered offline: photographs (`images`), speech, music and effects
(`audio`) and clips (`video`), each with its held-out split, and the random crops, segments and clips that
training draws from them."""
