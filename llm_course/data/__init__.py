"""Layer 1, text in (lessons 00-01): the offline data carriers, the course datasets and
their splits, tokenizers, and language-model blocks. May import `env`."""
