"""Test-wide settings, applied before anything imports transformers or datasets.

The tests run offline (as CI and a classroom without Wi-Fi do) and at the smallest scale.
The notebook kernels that nbval and papermill start inherit these variables.
"""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("LLM_COURSE_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Course checkpoints built during the tests go to a throwaway home, shared by the
# notebooks of one test session (lesson 06 reuses the GPT that lesson 02 pretrained).
os.environ.setdefault("LLM_COURSE_HOME", tempfile.mkdtemp(prefix="llm_course_test_home_"))
