"""The learning loop's shell: the learner (one writer per model) and the model registry."""
