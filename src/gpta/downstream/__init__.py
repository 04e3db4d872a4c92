"""The small model's training and serving: one Trainer round at a time (training.py), the
saved artifact (artifact.py) and ``load_pipeline`` (pipeline.py). Loading the pretrained model,
the device, batched inference and the pooled classifier sit below the tasks, in
:mod:`gpta.modeling`."""
