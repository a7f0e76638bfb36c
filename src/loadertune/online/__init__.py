"""The self-tuning DataLoader: configs switched at batch boundaries inside the user's own loop,
every batch of the sampler's epoch delivered exactly once (work in progress, issue 12)."""
