"""Layer 6, putting a model to work (lesson 08): compression and ONNX export; the HTTP
service (safe model loading, request checks, API keys, masked request logs, a rate limit,
Prometheus metrics); drift checks, alert rules, an autoscaling simulation and a
counterfactual bias probe. May import every layer below it."""
