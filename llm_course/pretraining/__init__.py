"""Layer 4, part one of the course (lessons 02-03): pretraining a small GPT and a small BERT.
May import every layer below it (`env`, `data`, `models`, `training`)."""
