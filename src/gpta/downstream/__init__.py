"""The small model: loading, one training round at a time, inference with a fixed prefix."""
