"""Training gist adapters: data from real text, the frozen-base recipe, checkpoints, configs."""
