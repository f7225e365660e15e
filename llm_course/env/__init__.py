"""Layer 0, the ground every lesson stands on: scale presets, paths, the hub and its errors,
the device, offline assets, the doctor, and recording results. Imports nothing of the course."""
