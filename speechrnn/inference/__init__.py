"""Inference without Lightning or Hydra: load_model, Predictor, backends, streaming, export."""
