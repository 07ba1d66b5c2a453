"""Training: train(cfg), the LightningModule and the trainer settings."""
