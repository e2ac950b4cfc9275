"""Tiny random transformers codecs and VQ-VAEs, saved with save_pretrained: what hf-audio and hf-image wrap.

    folder = save_tiny("encodec", tmp_path)    # a folder load_tokenizer takes, built in ~0.1 s, no download

Sizes are the smallest the classes allow (GroupNorm(32) keeps the image VQs near 1-2 MB). Codebooks
that the classes initialise to zeros (EnCodec, Mimi, X-codec) are randomised, or every code would be 0.
"""

from __future__ import annotations

from pathlib import Path

import torch

AUDIO = ("encodec", "dac", "mimi", "xcodec")
IMAGE = ("chameleon", "emu3", "janus")
FULL = ("chameleon-full", "emu3-full", "janus-full")  # the whole multimodal model with a tiny LM

_TEXT = dict(vocab_size=128, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
             num_key_value_heads=2)  # fmt: skip
_VQ = {
    "chameleon": dict(embed_dim=4, num_embeddings=64, latent_channels=4, base_channels=32,
                      channel_multiplier=[1, 1, 1, 1, 1], num_res_blocks=1),
    "emu3": dict(codebook_size=64, base_channels=32, channel_multiplier=[1, 1, 1, 1], num_res_blocks=1,
                 attn_resolutions=[], hidden_size=32),
    "janus": dict(embed_dim=4, num_embeddings=64, latent_channels=4, base_channels=32,
                  channel_multiplier=[1, 1, 1, 1, 1], num_res_blocks=1, num_patches=4),
}  # fmt: skip


def build(kind: str) -> torch.nn.Module:
    """A tiny random model of `kind` (one of AUDIO, IMAGE, FULL, or "encodec-48khz"), in eval mode."""
    import transformers as T

    torch.manual_seed(0)
    if kind in ("encodec", "encodec-48khz"):
        extra = dict(normalize=True, chunk_length_s=1.0, overlap=0.01, audio_channels=2) if kind != "encodec" else {}
        model = T.EncodecModel(T.EncodecConfig(hidden_size=16, num_filters=4, num_lstm_layers=1, codebook_size=64,
                                               target_bandwidths=[0.9, 1.8], **extra))  # fmt: skip
        layers = [layer.codebook.embed for layer in model.quantizer.layers]
    elif kind == "dac":
        model = T.DacModel(T.DacConfig(encoder_hidden_size=4, downsampling_ratios=[2, 4, 8, 8], decoder_hidden_size=32,
                                       n_codebooks=4, codebook_size=64, codebook_dim=4))  # fmt: skip
        layers = []
    elif kind == "mimi":
        model = T.MimiModel(T.MimiConfig(hidden_size=16, num_filters=4, codebook_size=64, codebook_dim=8,
                                         num_quantizers=4, vector_quantization_hidden_dimension=8, upsample_groups=16,
                                         num_hidden_layers=1, intermediate_size=32, num_attention_heads=2,
                                         num_key_value_heads=2, head_dim=8))  # fmt: skip
        q = model.quantizer
        rvqs = (q.semantic_residual_vector_quantizer, q.acoustic_residual_vector_quantizer)
        layers = [layer.codebook.embed_sum for rvq in rvqs for layer in rvq.layers]
        for rvq in rvqs:
            for layer in rvq.layers:
                layer.codebook._embed = None  # cached on first use
    elif kind == "xcodec":
        hubert = dict(model_type="hubert", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, conv_dim=[8] * 7, num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2)  # fmt: skip
        model = T.XcodecModel(T.XcodecConfig(
            acoustic_model_config=dict(encoder_hidden_size=4, decoder_hidden_size=32, hidden_size=16),
            semantic_model_config=hubert, codebook_size=32, target_bandwidths=[0.5, 1.0]))  # fmt: skip
        layers = [q.codebook.embed for q in model.quantizer.quantizers]
    elif kind == "chameleon":
        return T.ChameleonVQVAE(T.ChameleonVQVAEConfig(**_VQ["chameleon"])).eval()
    elif kind == "emu3":
        return T.Emu3VQVAE(T.Emu3VQVAEConfig(**_VQ["emu3"])).eval()
    elif kind == "janus":
        return T.JanusVQVAE(T.JanusVQVAEConfig(**_VQ["janus"])).eval()
    elif kind == "chameleon-full":
        cfg = T.ChameleonConfig(**_TEXT, vq_config=_VQ["chameleon"], vocabulary_map={"<image>": 3})
        return T.ChameleonForConditionalGeneration(cfg).eval()
    elif kind == "emu3-full":
        text = dict(_TEXT, pad_token_id=0, bos_token_id=1, eos_token_id=2)
        cfg = T.Emu3Config(vq_config=_VQ["emu3"], text_config=text, vocabulary_map={"<image>": 3})
        return T.Emu3ForConditionalGeneration(cfg).eval()
    elif kind == "janus-full":
        vision = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=64, patch_size=16,
                      projection_dim=16, depth=1)  # fmt: skip
        cfg = T.JanusConfig(vq_config=_VQ["janus"], vision_config=vision, text_config=dict(model_type="llama", **_TEXT),
                            image_token_id=3)  # fmt: skip
        return T.JanusForConditionalGeneration(cfg).eval()
    else:
        raise ValueError(f"unknown tiny model {kind!r}")
    with torch.no_grad():
        for t in layers:
            t.normal_()
    return model.eval()


def save_tiny(kind: str, root: Path) -> Path:
    """Build `kind` and save it as root/kind (once per root)."""
    folder = Path(root) / kind
    if not (folder / "config.json").is_file():
        build(kind).save_pretrained(folder)
    return folder
