"""Training: the SFT and RL stages, the worker process that runs TRL, rewards, checkpoints, think tokens."""
