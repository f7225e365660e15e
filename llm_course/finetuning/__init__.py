"""Layer 5, parts two and three (lessons 04-07): linear probes, task data, augmentation,
adversarial training, LoRA, adapters, the peft methods and domain-adaptive pretraining.
May import every layer below it."""
