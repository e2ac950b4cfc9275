"""What the tests share: toy tokenizers (registered on import), tiny transformers models, the DDP runner and
its worker, and the kill-during-save script. Run as scripts, the worker and kill_saves import their siblings."""
