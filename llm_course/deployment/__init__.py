"""Layer 6, putting a model to work (lesson 08): compression, ONNX export, the HTTP service
and drift checks. May import every layer below it."""
