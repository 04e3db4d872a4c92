"""The pretrained small model, below the tasks that use it and the LLM backends.

loading.py (``load_pretrained``, ``quiet_loading``), device.py (``resolve_device``),
inference.py (``forward_batches``: batched forward passes in eval mode) and pooled.py (the
classifier over a sentence-transformers model's pooled embedding). Training rounds, the
saved artifact and ``load_pipeline`` sit above the tasks, in :mod:`gpta.downstream`.

Named ``modeling`` (Hugging Face's word for model code), not ``models``: ``gpta models``
lists and fetches the TA's GGUF models (:mod:`gpta.fetched`), which are not here.
"""
