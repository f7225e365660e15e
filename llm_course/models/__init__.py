"""Layer 2, the networks: model configs, loading pretrained and course models, parameter
counts, the sparse-head masked LM and text generation. May import `env` and `data`."""
